/* init.h - lazy initialisation on the first call, and the fork handlers. */
#ifndef STRATA_INIT_H
#define STRATA_INIT_H

#include "internal.h"
#include "tier.h"

enum { INIT_NONE = 0, INIT_READY };
extern _Atomic int init_state;     /* INIT_READY once the allocator can serve */
void init_slow(void);
static inline void init_ensure(void) {
  if (unlikely(atomic_load_acquire(&init_state) != INIT_READY)) init_slow();
}
static inline bool init_ready(void) { return atomic_load_relaxed(&init_state) == INIT_READY; }

/* Every tier with a role (tier.h), in lock order. */
extern const tier_t *const init_tiers[];
extern const unsigned init_tier_count;

#endif
