/* decay.h - the purge driver: giving free memory back to the OS after a
 * delay. It walks the tiers' decay operations (tier.h) in the order init
 * gives them: each returns what has been free for options.decay_ms. A
 * purge thread does it in a program that runs threads of its own, so the
 * program's resident memory falls even while it is idle; otherwise (and with
 * bg=0) the allocator's slow paths do it, through decay_poll. What the
 * tiers have to purge reaches the driver through backlog.h: no tier calls
 * the driver.
 */
#ifndef STRATA_DECAY_H
#define STRATA_DECAY_H

#include "backlog.h"

/* The tiers, in lock order (init, once). */
void decay_init(const tier_t *const *tiers, unsigned n);

/* From the API's slow paths, where no allocator lock is held: start the
 * purge thread if it is wanted (allocation paths only: `may_start`; a free
 * must not start it: the C library frees an exited thread's TLS with its
 * thread-stack lock held, which pthread_create takes too), or run a due pass
 * inline while no thread runs. Only a flag test while the thread runs. A
 * busy program polls thousands of times a second, so the clock and the
 * shared flags are looked at on one poll in 16, but for a due start. */
extern __thread uint8_t decay_polls __attribute__((tls_model("initial-exec")));
void decay_poll_slow(bool may_start);
static inline void decay_poll(bool may_start) {
  if (unlikely(atomic_load_relaxed(&backlog_poll_needed)) &&
      ((may_start && atomic_load_relaxed(&backlog_start_due)) || ++decay_polls % 16 == 0))
    decay_poll_slow(may_start);
}

/* One pass over the tiers at `now`; true when more will be due later. */
bool decay_run(uint32_t now);

#endif
