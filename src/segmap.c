/* segmap.c - the segment byte map. */
#include "segmap.h"

_Atomic uint8_t segmap[SEGMAP_ENTRIES];

static void segmap_update(void *base, size_t size, seg_kind_t from, seg_kind_t to) {
  ASSERT(((uintptr_t)base & SEG_MASK) == 0 && (size & SEG_MASK) == 0);
  uintptr_t first = (uintptr_t)base >> SEG_SHIFT;
  for (uintptr_t i = first; i < first + (size >> SEG_SHIFT); i++) {
    ASSERT(i < SEGMAP_ENTRIES && atomic_load_relaxed(&segmap[i]) == from);
    atomic_store_release(&segmap[i], (uint8_t)to);
  }
}

void segmap_set(void *base, size_t size, seg_kind_t kind) { segmap_update(base, size, SEG_NONE, kind); }
void segmap_clear(void *base, size_t size, seg_kind_t kind) { segmap_update(base, size, kind, SEG_NONE); }
