/* arena.h - one buddy arena of the large tier: 64 MiB aligned to its size,
 * its blocks power-of-two runs of pages, with the pages' dirty and hot
 * state and the usable size of each block; one lock. large.c keeps the set
 * of arenas and chooses among them. */
#ifndef STRATA_ARENA_H
#define STRATA_ARENA_H

#include "lock.h"
#include "tier.h"

/* The largest block an arena can give (half of it: the metadata sits in the
 * first half). */
#define LARGE_MAX (ARENA_SIZE / 2)

typedef struct arena arena_t;

/* A new arena, mapped and in the segment map (guard=1: its block area
 * inaccessible); NULL when out of memory. */
arena_t *arena_new(void);
/* The arena of block p (p - 1 in it); aborts naming `call` when its
 * metadata is damaged. */
arena_t *arena_of(const void *p, const char *call);
lock_t *arena_lock(arena_t *a);

/* Where a block goes: at `at`, inside the free block `in`, with `dirty` of
 * its used pages dirty (at == NULL: no free block fits). */
typedef struct { char *at, *in; size_t dirty; } arena_pick_t;
/* Under the arena's lock: the place for a block of 2^order pages of which
 * the first `pages` are used (see arena.c). */
arena_pick_t arena_pick(const arena_t *a, unsigned order, size_t pages);
/* Under the arena's lock: take the block picked; with `dirty`, a bitmap of
 * `pages` bits gets which of its used pages may be non-zero (calloc). */
void *arena_take(arena_t *a, arena_pick_t pick, unsigned order, size_t pages, uint64_t *dirty);

/* The block at p (checked: fatal when p is not one): free it, its usable
 * bytes, resize it in place (false: it must move). Each takes the lock. */
void arena_free(arena_t *a, void *p, const char *call);
size_t arena_usable(arena_t *a, const void *p, const char *call);
bool arena_resize(arena_t *a, void *p, size_t size);

/* Purge the free dirty pages (and blocks' dirty tails) that have cooled
 * for `age` ms at `now`; returns the bytes, *younger when some must wait.
 * arena_trim purges all of them. Each takes the lock. */
size_t arena_decay(arena_t *a, uint32_t now, uint32_t age, bool *younger);
size_t arena_trim(arena_t *a);
/* Add a's counts, mapped and resident bytes (resident past the blocks'
 * usable pages is its backlog). */
void arena_stats(arena_t *a, tier_stats_t *st);
/* Expensive walk: the buddy's own check, and every allocated block's usable
 * pages within it and dirty. Takes the lock. */
bool arena_valid(arena_t *a);

#endif
