/* init.c - initialisation on the first call, the list of tiers, and the
 * fork handlers.
 *
 * Initialisation allocates nothing and needs no dlsym, so it is safe from
 * another library's constructor and when glibc allocates inside pthread or
 * stdio calls.
 *
 * The fork handlers take every lock in the order of lock.h: the C library's
 * stdio list lock, init_lock, then each tier's locks in the order of
 * init_tiers (which is that order).
 */
#include "init.h"
#include "decay.h"
#include "heap.h"
#include "huge.h"
#include "large.h"
#include "options.h"
#include "os.h"
#include "prof.h"
#include "segmap.h"

#include <stdlib.h>

_Atomic int init_state;
static lock_t init_lock = LOCK_INIT(RANK_INIT);

const tier_t *const init_tiers[] = {
  &heap_tier, &large_tier, &huge_tier, &pageheap_tier, &segmap_tier, &backlog_tier, &prof_tier,
};
const unsigned init_tier_count = sizeof init_tiers / sizeof init_tiers[0];

/* A fork from a signal handler that interrupted this thread inside the
 * allocator cannot take the locks (it holds some, and waiting for the others
 * could wait on a thread that waits on ours): like glibc's single-threaded
 * fork, it takes none, and the child, whose locks are re-initialised, must
 * not allocate before the interrupted call has finished (it usually calls
 * only async-signal-safe functions and _exit). Such forks nest inside the
 * interrupted one (a fork whose handlers hold the locks, too): the count
 * of those in progress on this thread, not a flag, tells each parent and
 * child handler whether its own prepare took the locks. */
static __thread unsigned fork_unlocked __attribute__((tls_model("initial-exec")));

/* glibc's stdio list lock: fork takes it after the prepare handlers, and
 * fflush(NULL) holds it while it waits for a stream's lock, whose owner may
 * be in realloc (getline) waiting for ours. So prepare takes it before the
 * allocator's locks, the order glibc's own malloc keeps (glibc bug 19431).
 * It is recursive, so fork's own take nests; the child resets it (glibc
 * does too when the parent had threads). Weak: other C libraries lack it. */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));

static void fork_prepare(void) {
  ASSERT(lock_depth > 0 || lock_ranks == 0);
  if (!init_ready()) return;
  if (lock_depth > 0) {
    fork_unlocked++;
    return;
  }
  if (_IO_list_lock) _IO_list_lock();
  lock_acquire_fork(&init_lock);
  lock_rank_t last = RANK_INIT;       /* the tiers' locks come in rank order */
  for (unsigned i = 0; i < init_tier_count; i++) {
    const tier_t *t = init_tiers[i];
    for (unsigned k = 0; k < TIER_LOCKS && t->locks[k]; k++) {
      ASSERT(t->locks[k]->rank > last);
      last = t->locks[k]->rank;
      lock_acquire_fork(t->locks[k]);
    }
    if (t->fork_prepare) t->fork_prepare();
  }
}

static void fork_parent(void) {
  if (!init_ready()) return;
  if (fork_unlocked) {
    fork_unlocked--;
    return;
  }
  for (unsigned i = init_tier_count; i-- > 0;) {
    const tier_t *t = init_tiers[i];
    if (t->fork_parent) t->fork_parent();
    for (unsigned k = TIER_LOCKS; k-- > 0;)
      if (t->locks[k]) lock_release_fork(t->locks[k]);
  }
  lock_release_fork(&init_lock);
  if (_IO_list_unlock) _IO_list_unlock();
}

static void fork_child(void) {
  if (!init_ready()) return;
  if (fork_unlocked) {
    fork_unlocked--;
  } else {                              /* prepare's locks are re-initialised */
    lock_fork_child();
    if (_IO_list_resetlock) _IO_list_resetlock();
  }
  for (unsigned i = init_tier_count; i-- > 0;) {
    const tier_t *t = init_tiers[i];
    for (unsigned k = 0; k < TIER_LOCKS && t->locks[k]; k++) lock_reinit(t->locks[k]);
    if (t->fork_child) t->fork_child();
  }
  lock_reinit(&init_lock);
}

/* The fork handlers are registered before the allocator is published, so no
 * thread can be inside it without them; pthread_atfork may allocate, which
 * re-enters here and is served (everything it needs is set up by then).
 * init_at_load registers them when the library is loaded, before the
 * program's own handlers: fork runs prepare handlers last-registered first,
 * so the program's prepare (and its parent and child handlers, run after
 * ours) may allocate. */
void init_slow(void) {
  static __thread bool inside __attribute__((tls_model("initial-exec")));
  if (inside) return;                  /* re-entered from pthread_atfork */
  inside = true;
  lock_acquire(&init_lock);
  if (!init_ready()) {
    class_init();
    span_init_secrets(os_random_secret());
    segmap_prepare(os_sbrk_current());        /* the break heap */
    segmap_prepare((const void *)&getenv);    /* mmap places ours below the C library */
    options_parse();
    span_checked_mode = options.junk || options.canary;
    prof_init();
    if (!heap_init()) fatal("init", NULL, "pthread_key_create failed");
    decay_init(init_tiers, init_tier_count);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    atomic_store_release(&init_state, INIT_READY);
  }
  lock_release(&init_lock);
  inside = false;
}

__attribute__((constructor)) static void init_at_load(void) { init_ensure(); }
