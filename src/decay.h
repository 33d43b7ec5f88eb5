/* decay.h - giving free memory back to the OS after a delay.
 *
 * Free page runs and free buddy pages are purged once they have been free
 * for options.decay_ms, abandoned spans that became empty go back to the
 * page heap, and the free pages of abandoned spans that stayed sparse that
 * long are purged (heap_sweep_abandoned). In a program that runs threads
 * of its own, a background thread does it, so the program's resident memory
 * falls even while it is idle. It starts lazily (once 8 MiB have been taken
 * or freed, and only once a second thread of the program allocates: it never
 * makes a single-threaded process multithreaded), sleeps while there is
 * nothing to do and ends when the program is down to one thread again;
 * option bg=0 turns it off. Without the thread the allocator's slow paths
 * advance the decay.
 */
#ifndef STRATA_DECAY_H
#define STRATA_DECAY_H

#include "internal.h"

/* `bytes` became purgeable (any thread, any lock held: no allocation, only
 * flags and maybe a condition signal). */
void decay_note(size_t bytes);
/* The program took `bytes` more (a new segment, a large block; any lock
 * held): with the frees noted, what decides when the thread starts, so that
 * it runs before a burst is freed. */
void decay_note_growth(size_t bytes);
/* Called from the API's slow paths, where no allocator lock is held: starts
 * the thread if it is wanted (allocation paths only: `may_start`), or runs a
 * due decay pass inline while no thread runs. A free must not start it: the
 * C library frees an exited thread's TLS with its thread-stack lock held,
 * which pthread_create takes too (glibc's tst-malloc-thread-exit hung).
 * Only a flag test while the thread runs. While it does not, a busy program
 * polls thousands of times a second, so each thread looks at the clock and
 * the shared flags on one poll in 16. */
extern _Atomic bool decay_poll_needed;
/* The thread is wanted: the next allocation's poll starts it (polls that
 * only run passes are sampled). Set with decay_poll_needed. */
extern _Atomic bool decay_start_due;
extern __thread uint8_t decay_polls __attribute__((tls_model("initial-exec")));
void decay_poll_slow(bool may_start);
static inline void decay_poll(bool may_start) {
  if (unlikely(atomic_load_relaxed(&decay_poll_needed)) &&
      ((may_start && atomic_load_relaxed(&decay_start_due)) || ++decay_polls % 16 == 0))
    decay_poll_slow(may_start);
}
/* The number of the program's threads that hold a heap changed to
 * `threads` (heap.c): the purge thread may be wanted, or may retire. */
void decay_threads_changed(unsigned threads);
/* One pass at time `now`; true when more will be due later. */
bool decay_run(uint32_t now);

void decay_fork_prepare(void);
void decay_fork_parent(void);
void decay_fork_child(void);

#endif
