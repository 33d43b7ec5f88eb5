/* lock.h - the allocator's locks and their order.
 *
 * Every lock has a rank, and this enum is the lock order, outer first: a
 * thread that holds a lock takes only locks of a higher rank, and locks of
 * one rank one at a time. Debug builds (debug_level >= 2) keep the ranks a
 * thread holds and abort on an acquire out of order. The fork handlers take
 * every lock in this order (init.c) with lock_acquire_fork, which checks
 * nothing: they hold all arenas and all spare caches at once.
 *
 * The locks are glibc's adaptive mutexes: a contended lock spins briefly
 * before it sleeps, as the sections are short (docs/decisions.md).
 * lock_depth counts the allocator locks the calling thread holds: a fork
 * from a signal handler that interrupted the allocator must not wait for
 * them (init.c).
 */
#ifndef STRATA_LOCK_H
#define STRATA_LOCK_H

#include "internal.h"

typedef enum {
  RANK_INIT,            /* init.c: initialisation */
  RANK_ORPHAN,          /* heap.c: the orphan heap, held across its refills */
  RANK_POOL,            /* heap.c: the pool of free heaps */
  RANK_ABANDONED,       /* abandon.c: the spans of exited threads */
  RANK_SPARE,           /* spare.c: a heap's spare spans */
  RANK_LARGE_GROW,      /* large.c: adding an arena */
  RANK_ARENA,           /* arena.c: an arena */
  RANK_HUGE,            /* huge.c: the live mappings and the cache */
  RANK_PAGEHEAP_PURGE,  /* pageheap.c: one purge at a time */
  RANK_PAGEHEAP,        /* pageheap.c: free runs and segments */
  RANK_SEGMAP,          /* segmap.c: mapping a leaf */
  RANK_BACKLOG,         /* backlog.c: the purge thread's sleep */
  RANK_PROF,            /* prof.c: the profile's tables (a leaf) */
  RANK_COUNT
} lock_rank_t;
_Static_assert(RANK_COUNT <= 32, "one bit per rank");

typedef struct {
  pthread_mutex_t mutex;
  lock_rank_t rank;
} lock_t;
#define LOCK_INIT(r) { PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP, (r) }

extern __thread unsigned lock_depth __attribute__((tls_model("initial-exec")));
/* Bit r: the thread holds a lock of rank r (debug builds). */
extern __thread uint32_t lock_ranks __attribute__((tls_model("initial-exec")));

static inline void lock_rank_take(const lock_t *l) {
  if (STRATA_DEBUG >= 2) {
    if (unlikely(lock_ranks >> l->rank)) fatal("lock", l, "lock taken out of order (see lock.h)");
    lock_ranks |= (uint32_t)1 << l->rank;
  }
}
static inline void lock_rank_drop(const lock_t *l) {
  if (STRATA_DEBUG >= 2) lock_ranks &= ~((uint32_t)1 << l->rank);
}

/* The count covers the whole time a lock may be held: raised before the
 * acquire, lowered after the release (a signal in between errs on the safe
 * side). */
static inline void lock_acquire(lock_t *l) {
  lock_rank_take(l);
  lock_depth++;
  __asm__ volatile("" ::: "memory");     /* ordered against a signal handler */
  pthread_mutex_lock(&l->mutex);
}
static inline bool lock_try(lock_t *l) {
  lock_depth++;
  __asm__ volatile("" ::: "memory");
  bool ok = pthread_mutex_trylock(&l->mutex) == 0;
  if (!ok) lock_depth--;
  else lock_rank_take(l);
  return ok;
}
static inline void lock_release(lock_t *l) {
  pthread_mutex_unlock(&l->mutex);
  __asm__ volatile("" ::: "memory");
  lock_depth--;
  lock_rank_drop(l);
}
/* Does the calling thread hold no lock but, maybe, the init lock? Only
 * then may it allocate or run a decay pass; initialisation allocates with
 * the init lock held (pthread_atfork). (Debug builds; true else.) */
static inline bool lock_none_but_init(void) {
  return STRATA_DEBUG < 2 || (lock_ranks & ~((uint32_t)1 << RANK_INIT)) == 0;
}
/* Does the calling thread hold a lock of rank r? (Debug builds; true else.) */
static inline bool lock_held(lock_rank_t r) {
  return STRATA_DEBUG < 2 || (lock_ranks >> r & 1);
}

/* Fork handlers: every lock, in rank order, no check; the child
 * re-initialises them (and its lock_ranks, lock_depth). */
static inline void lock_acquire_fork(lock_t *l) {
  lock_depth++;
  pthread_mutex_lock(&l->mutex);
}
static inline void lock_release_fork(lock_t *l) {
  pthread_mutex_unlock(&l->mutex);
  lock_depth--;
}
static inline void lock_reinit(lock_t *l) { l->mutex = (pthread_mutex_t)PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP; }
/* The child of a fork holds no lock. */
void lock_fork_child(void);

/* Wait on c, releasing l meanwhile (the purge thread's sleep). */
static inline void lock_wait(lock_t *l, pthread_cond_t *c) { pthread_cond_wait(c, &l->mutex); }

#endif
