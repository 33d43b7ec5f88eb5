/* segmap.c - the three segment bitmaps. */
#include "segmap.h"

_Atomic uint64_t segmap_bits[3][SEGMAP_WORDS];

seg_kind_t segmap_kind(const void *p) {
  for (seg_kind_t k = SEG_SMALL; k <= SEG_HUGE; k++)
    if (segmap_is(p, k)) return k;
  return SEG_NONE;
}

static void segmap_update(void *base, size_t size, seg_kind_t kind, bool set) {
  ASSERT(((uintptr_t)base & SEG_MASK) == 0 && (size & SEG_MASK) == 0);
  uintptr_t first = (uintptr_t)base >> SEG_SHIFT;
  uintptr_t last = first + (size >> SEG_SHIFT);
  for (uintptr_t i = first; i < last; i++) {
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (set) atomic_fetch_or_explicit(&segmap_bits[kind - 1][i >> 6], bit, memory_order_release);
    else atomic_fetch_and_explicit(&segmap_bits[kind - 1][i >> 6], ~bit, memory_order_release);
  }
}

void segmap_set(void *base, size_t size, seg_kind_t kind) { segmap_update(base, size, kind, true); }
void segmap_clear(void *base, size_t size, seg_kind_t kind) { segmap_update(base, size, kind, false); }
