/* bcache.h - a thread heap's block cache: per class, a list of free blocks
 * of any span of the bin (heap_t.free[c], counted as used by their spans),
 * which the fast paths pop and push without touching a span, so a program
 * that frees and allocates at random stays on them. It is bounded
 * (free_bound[c], class_info.cache blocks at first): a free that finds it
 * full goes to its span (bcache_full). A bound that overflows grows, and an
 * idle one shrinks back (bcache.c). */
#ifndef STRATA_BCACHE_H
#define STRATA_BCACHE_H

#include "heap_types.h"

/* A link decoded from a cached block that fails this test (not 16-byte
 * aligned, or past the 47-bit user address space) was overwritten. */
#define LINK_BAD_BITS (~(((uintptr_t)1 << ADDR_BITS) - 1) | (ALIGNMENT - 1))

/* Aborts: the block at the head of a cache did not carry the free key (a
 * write after free, or a double free whose second free came from another
 * thread) or its link was overwritten. */
COLD __attribute__((noreturn)) void bcache_bad_block(const block_t *b);

/* Pop the head of the cache of cls; *key gets its key word ^ free_key.
 * NULL when the cache is empty, and also for a bad head (the cache is then
 * not empty): the callers' slow paths abort on it, so the fast path has no
 * stack frame. The caller counts the room it frees: an allocation's pop
 * on the fast path, a trim's with the slow paths (bcache_room_add). */
static inline block_t *bcache_pop(heap_t *h, unsigned cls, uintptr_t *key) {
  block_t *b = h->free[cls];
  if (unlikely(b == NULL)) return NULL;
  /* Every cached block carries the key (KEY_FRESH at most) and a link that
   * decodes to an aligned user address: checked before the link is followed. */
  *key = b->key ^ h->free_key;
  uintptr_t next = b->next_enc ^ h->secret ^ (uintptr_t)b;
  if (unlikely((*key & ~(uintptr_t)KEY_FRESH) | (next & LINK_BAD_BITS))) return NULL;
  h->free[cls] = (block_t *)next;
  return b;
}

/* A slow path's change of room[c], counted in room_base[c]. */
static inline void bcache_room_add(heap_t *h, unsigned c, intptr_t d) {
  h->room[c] += d;
  STAT_SET(h->room_base[c], h->room_base[c] + d);
}

/* The owner's free of b (checked) found the cache of its class full (and
 * took a room it gives back): b goes to its span, and the class's bound may
 * grow at its next refill. */
void bcache_full(heap_t *h, span_t *s, block_t *b);

/* The owner's push of b, a checked block of s (class cls), onto its cache,
 * or onto the span when the cache is full. */
static inline void bcache_push(heap_t *h, span_t *s, unsigned cls, block_t *b) {
  /* One decrement that sets the flags: bcache_full gives the room back. */
  if (unlikely(--h->room[cls] < 0)) {
    bcache_full(h, s, b);
    return;
  }
  block_encode(b, h->free[cls], h->secret);
  b->key = h->free_key;
  h->free[cls] = b;
}

/* The most blocks the cache of class c can hold: its bound, plus one span's
 * blocks after a refill (a bound on walks of it). */
static inline uint32_t bcache_max(const heap_t *h, unsigned c) {
  return (uint32_t)h->free_bound[c] + class_info[c].count;
}

/* Expensive walk of the cache of c: its bound within the class's range,
 * its blocks free block starts of h's spans of class c, as many as its
 * room says. */
bool bcache_valid(const heap_t *h, unsigned c);

/* First bounds and rooms (a new heap). */
void bcache_init(heap_t *h);
/* The cache of c ran empty and is refilled: its bound may grow. */
void bcache_refilled(heap_t *h, unsigned c);
/* Every HEAP_GC_TICKS slow-path events: halve the grown bound of each class
 * with no refill since. */
void bcache_gc(heap_t *h);
/* Give every block of the cache of c back to its span and reset its bound;
 * aborts on a bad block. */
void bcache_flush(heap_t *h, unsigned c);
/* Fork child: only this thread's caches can still give their growth back. */
void bcache_fork_child(const heap_t *h);

#endif
