/* tier.h - what every tier shares with the purge driver, the fork handlers
 * and the statistics: a table of operations each tier exports (heap_tier,
 * large_tier, huge_tier, pageheap_tier, and segmap_tier and backlog_tier,
 * which have locks and little else). init.c lists them in lock order
 * (lock.h) and hands the list to decay.c and to its fork handlers, so no
 * lower layer calls up. Any pointer may be NULL: the tier has no such
 * role. */
#ifndef STRATA_TIER_H
#define STRATA_TIER_H

#include "lock.h"

typedef struct {
  unsigned long long nmalloc, nfree;
  size_t allocated;     /* bytes in live blocks */
  size_t active;        /* bytes of the pages (runs, blocks, mappings) holding them */
  size_t resident;      /* bytes of the tier's mappings in memory (mincore) */
  size_t mapped;        /* bytes of the tier's mappings */
  size_t dirty;         /* free bytes not yet returned (the decay's backlog) */
} tier_stats_t;

#define TIER_LOCKS 3

typedef struct {
  const char *name;     /* what a failed validity walk reports */
  /* Return to the OS what has been free for at least `age` ms at `now`;
   * set *younger when some of it must wait. */
  void (*decay)(uint32_t now, uint32_t age, bool *younger);
  /* Return everything free at once (malloc_trim); true when something went. */
  bool (*trim)(void);
  /* The tier's own locks in rank order (NULL after the last): around fork
   * they are taken in this order, released in the reverse one, and
   * re-initialised in the child (the parent's other threads are gone
   * there). */
  lock_t *locks[TIER_LOCKS];
  /* What fork needs beyond `locks`: prepare runs after they are taken,
   * parent before they are released, child after they are re-initialised. */
  void (*fork_prepare)(void);
  void (*fork_parent)(void);
  void (*fork_child)(void);
  /* Add the tier's figures (the small tier is the heaps and the page heap). */
  void (*stats)(tier_stats_t *st);
  /* Expensive walk of the tier's invariants (the heap tier: the calling
   * thread's heap); takes the tier's locks. */
  bool (*valid)(void);
} tier_t;

/* At debug_level 3, walk every tier of the list and abort naming the
 * first invalid one: what the decay passes and collect do when they end. */
static inline void tiers_check(const tier_t *const *tiers, unsigned n) {
  if (STRATA_DEBUG < 3) return;
  for (unsigned i = 0; i < n; i++)
    if (tiers[i]->valid && !tiers[i]->valid()) fatal("assert", NULL, tiers[i]->name);
}

#endif
