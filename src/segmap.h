/* segmap.h - address -> "is this ours, and what is it" in O(1), no lock.
 *
 * One byte per 4 MiB segment of the 47-bit user address space (32 MiB of
 * .bss, touched only where we have memory) holds the segment's kind: small
 * (page runs of spans), part of a buddy arena, or part of a huge mapping.
 * A pointer is looked up by (p - 1), see internal.h, so NULL and every wild
 * pointer land on SEG_NONE and are never dereferenced. A byte is set before
 * any block of the segment is handed out and cleared after the last one came
 * back, so relaxed loads suffice on the free path.
 */
#ifndef STRATA_SEGMAP_H
#define STRATA_SEGMAP_H

#include "internal.h"

typedef enum { SEG_NONE = 0, SEG_SMALL, SEG_ARENA, SEG_HUGE } seg_kind_t;

#define SEGMAP_ENTRIES ((size_t)1 << (ADDR_BITS - SEG_SHIFT))
extern _Atomic uint8_t segmap[SEGMAP_ENTRIES];

/* The kind of the segment holding the block at p (p - 1 in it): a bounds
 * check and one byte load. */
static inline seg_kind_t segmap_kind(const void *p) {
  uintptr_t idx = ((uintptr_t)p - 1) >> SEG_SHIFT;
  if (unlikely(idx >= SEGMAP_ENTRIES)) return SEG_NONE;
  return (seg_kind_t)atomic_load_relaxed(&segmap[idx]);
}

/* Mark [base, base + size) (segment aligned) as kind, or clear it (each
 * segment must have been marked as kind). */
void segmap_set(void *base, size_t size, seg_kind_t kind);
void segmap_clear(void *base, size_t size, seg_kind_t kind);

#endif
