/* segmap.c - the segment byte map: a static table of leaf pointers, leaves
 * mapped on first use and never unmapped (a lookup may read one at any
 * time). */
#include "segmap.h"
#include "lock.h"
#include "os.h"

/* The leaf of the ranges with none: all SEG_NONE, never written. */
static _Alignas(64) uint8_t segmap_none[SEGMAP_LEAF];

#define NONE(t)   ((uintptr_t)segmap_none - ((uintptr_t)(t) << SEGMAP_LEAF_BITS))
#define NONE4(t)  NONE(t), NONE(t + 1), NONE(t + 2), NONE(t + 3)
#define NONE16(t) NONE4(t), NONE4(t + 4), NONE4(t + 8), NONE4(t + 12)
#define NONE64(t) NONE16(t), NONE16(t + 16), NONE16(t + 32), NONE16(t + 48)
_Static_assert(SEGMAP_TOP == 512, "the initialiser below has 512 entries");
_Atomic uintptr_t segmap_top[SEGMAP_TOP] = {
  NONE64(0), NONE64(64), NONE64(128), NONE64(192),
  NONE64(256), NONE64(320), NONE64(384), NONE64(448),
};
#undef NONE
#undef NONE4
#undef NONE16
#undef NONE64

static lock_t segmap_lock = LOCK_INIT(RANK_SEGMAP);   /* serialises leaf creation */

/* The byte of segment idx, its leaf mapped if need be; NULL when that
 * fails. */
static _Atomic uint8_t *segmap_entry(uintptr_t idx) {
  uintptr_t t = idx >> SEGMAP_LEAF_BITS, bias = t << SEGMAP_LEAF_BITS;
  uintptr_t leaf = atomic_load_acquire(&segmap_top[t]);
  if (unlikely(leaf + bias == (uintptr_t)segmap_none)) {
    lock_acquire(&segmap_lock);
    leaf = atomic_load_acquire(&segmap_top[t]);
    if (leaf + bias == (uintptr_t)segmap_none) {
      void *fresh = os_map_aligned(SEGMAP_LEAF, OS_PAGE, 0);   /* zero: SEG_NONE */
      if (fresh) {
        leaf = (uintptr_t)fresh - bias;
        atomic_store_release(&segmap_top[t], leaf);
      }
    }
    lock_release(&segmap_lock);
    if (leaf + bias == (uintptr_t)segmap_none) return NULL;
  }
  return (_Atomic uint8_t *)(leaf + idx);
}

static void segmap_update(void *base, size_t size, seg_kind_t from, seg_kind_t to) {
  uintptr_t first = (uintptr_t)base >> SEG_SHIFT;
  for (uintptr_t i = first; i < first + (size >> SEG_SHIFT); i++) {
    _Atomic uint8_t *e = segmap_entry(i);     /* mapped by segmap_set */
    ASSERT(e && atomic_load_relaxed(e) == from);
    atomic_store_release(e, (uint8_t)to);
  }
}

bool segmap_set(void *base, size_t size, seg_kind_t kind) {
  ASSERT(((uintptr_t)base & SEG_MASK) == 0 && (size & SEG_MASK) == 0);
  uintptr_t first = (uintptr_t)base >> SEG_SHIFT, end = first + (size >> SEG_SHIFT);
  ASSERT(end <= SEGMAP_ENTRIES);
  for (uintptr_t i = first; i < end; i = (i | (SEGMAP_LEAF - 1)) + 1)   /* one per leaf */
    if (!segmap_entry(i)) return false;
  segmap_update(base, size, SEG_NONE, kind);
  return true;
}

void segmap_clear(void *base, size_t size, seg_kind_t kind) { segmap_update(base, size, kind, SEG_NONE); }

void segmap_prepare(const void *p) {
  uintptr_t idx = (uintptr_t)p >> SEG_SHIFT;
  if (idx < SEGMAP_ENTRIES) segmap_entry(idx);
}

const tier_t segmap_tier = {
  .name = "segmap",
  .locks = { &segmap_lock },
};
