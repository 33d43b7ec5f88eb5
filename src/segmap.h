/* segmap.h - address -> "is this ours, and what is it" in O(1), no lock.
 *
 * One bit per 4 MiB segment of the 47-bit user address space in each of three
 * bitmaps (4 MiB of .bss each, touched only where we have memory): small
 * segments, segments of buddy arenas, and the first segment of each huge
 * mapping. A pointer is looked up by (p - 1), see internal.h, so NULL and
 * every wild pointer land on a clear bit and are never dereferenced.
 * Bits are set before any block of the segment is handed out and cleared
 * after the last one came back, so relaxed loads suffice on the free path.
 */
#ifndef STRATA_SEGMAP_H
#define STRATA_SEGMAP_H

#include "internal.h"

typedef enum { SEG_NONE = 0, SEG_SMALL, SEG_ARENA, SEG_HUGE } seg_kind_t;

#define SEGMAP_WORDS (((size_t)1 << (ADDR_BITS - SEG_SHIFT)) / 64)
extern _Atomic uint64_t segmap_bits[3][SEGMAP_WORDS];   /* by kind - 1 */

/* Is the segment holding the block at p (p - 1 in it) of kind `kind`?
 * The fast path asks this for SEG_SMALL only. */
static inline bool segmap_is(const void *p, seg_kind_t kind) {
  uintptr_t a = (uintptr_t)p - 1;
  if (unlikely(a >= ((uintptr_t)1 << ADDR_BITS))) return false;
  uintptr_t idx = a >> SEG_SHIFT;
  return (atomic_load_relaxed(&segmap_bits[kind - 1][idx >> 6]) >> (idx & 63)) & 1;
}

seg_kind_t segmap_kind(const void *p);
/* Mark or clear [base, base + size) (segment aligned) as kind. */
void segmap_set(void *base, size_t size, seg_kind_t kind);
void segmap_clear(void *base, size_t size, seg_kind_t kind);

#endif
