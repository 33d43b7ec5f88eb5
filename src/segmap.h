/* segmap.h - address -> "is this ours, and what is it" in O(1), no lock.
 *
 * One byte per 4 MiB segment of the 47-bit user address space holds the
 * segment's kind: small (page runs of spans), part of a buddy arena, or part
 * of a huge mapping. The bytes live in leaves of SEGMAP_LEAF entries (each
 * covers 256 GiB), mapped when a segment in their range is first marked; a
 * static table of SEGMAP_TOP leaf pointers points every range without a
 * leaf at one shared leaf of zeros (SEG_NONE), so a lookup is two loads and
 * no test of the leaf. The table holds each leaf's address less its first
 * index, so the full index reaches the byte without a mask. Address space
 * is taken only for the ranges in use: a few leaves of 64 KiB.
 *
 * A pointer is looked up by (p - 1), see internal.h, so NULL and every wild
 * pointer land on SEG_NONE and are never dereferenced. A byte is set before
 * any block of the segment is handed out and cleared after the last one came
 * back, so relaxed loads suffice on the free path; a leaf is zeroed before
 * its pointer is published (release).
 */
#ifndef STRATA_SEGMAP_H
#define STRATA_SEGMAP_H

#include "internal.h"
#include "tier.h"

typedef enum { SEG_NONE = 0, SEG_SMALL, SEG_ARENA, SEG_HUGE } seg_kind_t;

#define SEGMAP_ENTRIES   ((uintptr_t)1 << (ADDR_BITS - SEG_SHIFT))
#define SEGMAP_LEAF_BITS 16
#define SEGMAP_LEAF      ((uintptr_t)1 << SEGMAP_LEAF_BITS)
#define SEGMAP_TOP       (SEGMAP_ENTRIES / SEGMAP_LEAF)
/* segmap_top[t] + idx is the byte of segment idx, for t = idx / SEGMAP_LEAF. */
extern _Atomic uintptr_t segmap_top[SEGMAP_TOP];

/* The kind of the segment holding the block at p (p - 1 in it): a bounds
 * check and two loads. */
static inline seg_kind_t segmap_kind(const void *p) {
  uintptr_t idx = ((uintptr_t)p - 1) >> SEG_SHIFT;
  if (unlikely(idx >= SEGMAP_ENTRIES)) return SEG_NONE;
  uintptr_t leaf = atomic_load_relaxed(&segmap_top[idx >> SEGMAP_LEAF_BITS]);
  return (seg_kind_t)atomic_load_relaxed((_Atomic uint8_t *)(leaf + idx));
}

/* Mark [base, base + size) (segment aligned) as kind; false, marking
 * nothing, when a leaf could not be mapped. Clear marks (each segment must
 * have been marked as kind). */
bool segmap_set(void *base, size_t size, seg_kind_t kind);
void segmap_clear(void *base, size_t size, seg_kind_t kind);

/* Map the leaf for the range of p now, if it can be: init does it for the
 * break heap and the area where mmap places mappings, so that a program
 * that reaches an address-space limit has them already. */
void segmap_prepare(const void *p);

/* fork: the leaf lock. */
extern const tier_t segmap_tier;

#endif
