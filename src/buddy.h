/* buddy.h - the buddy core: power-of-two blocks over one region.
 *
 * A pure data structure: no system call, no lock, no allocation. It serves
 * both the public standalone API (strata_buddy_*, see strata.h) and the large
 * tier (arena.c), which keeps one buddy per arena under the arena's lock.
 *
 * The region is cut into `nblocks` minimum blocks (index 0 .. nblocks-1).
 * A block of order k covers 2^k minimum blocks and starts at an index that is
 * a multiple of 2^k; its buddy starts at index ^ 2^k. The metadata (struct
 * strata_buddy followed by the per-index tables) lives inside the region, after
 * the caller's prefix, bracketed by two canary words that buddy_check_canaries
 * verifies.
 */
#ifndef STRATA_BUDDY_H
#define STRATA_BUDDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "strata.h"

/* Bytes of metadata strata_buddy_init places after the prefix for a region of
 * `size` bytes and minimum block `min_block` (before rounding up to min_block). */
size_t buddy_meta_size(size_t size, size_t min_block);

/* Allocate a block of exactly order `order` (2^order minimum blocks);
 * NULL when none is free. */
void *buddy_alloc_order(strata_buddy *b, unsigned order);

/* The free blocks of order `order`, most recently freed first: the first
 * (NULL when none), and the one after the free block p. */
void *buddy_first_free(const strata_buddy *b, unsigned order);
void *buddy_next_free(const strata_buddy *b, const void *p);
/* Allocate the block of order `order` at p out of the free block `in` (a
 * block of that order or larger that holds p, p aligned to its own size):
 * the rest of `in` stays free, split into the fewest blocks. Returns p. */
void *buddy_alloc_in(strata_buddy *b, void *in, void *p, unsigned order);

/* The order of the allocated block starting at p, or -1 when p is not the
 * start of an allocated block of b. */
int buddy_order_of(const strata_buddy *b, const void *p);

/* Does a free block start at p? (A block freed twice, unless it has merged
 * into a buddy on its left.) */
bool buddy_free_at(const strata_buddy *b, const void *p);
/* Free the allocated block at p; p must satisfy buddy_order_of(b, p) >= 0.
 * Merges with free buddies. */
void buddy_free_block(strata_buddy *b, void *p);

/* Grow the allocated block at p in place to order `order` by absorbing its
 * free right-hand buddies (p must be the left buddy at each step). Returns
 * false, changing nothing, when that is not possible. */
bool buddy_grow_in_place(strata_buddy *b, void *p, unsigned order);

/* Shrink the allocated block at p to order `order`, freeing the upper halves. */
void buddy_shrink(strata_buddy *b, void *p, unsigned order);

/* The minimum block size; the bytes at the region's start that are never
 * handed out (the caller's prefix and the metadata, rounded up to whole
 * minimum blocks); the largest order. */
size_t buddy_min_block(const strata_buddy *b);
size_t buddy_reserved_bytes(const strata_buddy *b);
unsigned buddy_max_order(const strata_buddy *b);

/* True when both canary words around the metadata are intact. */
bool buddy_check_canaries(const strata_buddy *b);

/* Expensive walk: free lists, bitmap and order tables agree, no two free
 * buddies of the same order are left unmerged, free + used covers the region
 * exactly. Returns true when all holds. */
bool buddy_check(const strata_buddy *b);

#endif
