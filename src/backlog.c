/* backlog.c - the notes from the tiers to the purge driver (backlog.h).
 *
 * Invariant: while memory is pending (noted and not yet taken by a pass) or
 * the purge thread is wanted and not started, backlog_poll_needed is set
 * with no thread running, else nothing would run the decay or start the
 * thread (a note that finds pending set leaves the flags alone). So the flag
 * is cleared only when neither holds, and both are read again after it; a
 * note between the two sets it again. The flags are shared: written only
 * when they change.
 */
#include "backlog.h"
#include "options.h"
#include "os.h"

/* glibc's flag: 1 while the process has never had a second thread. Weak:
 * other C libraries lack it. */
extern char __libc_single_threaded __attribute__((weak));

/* The thread is worth starting once this much has been taken or freed. */
#define BACKLOG_THREAD_MIN (8 * MiB)
/* A failed start (no memory, a thread limit) is tried again after this. */
#define BACKLOG_RETRY_MS 1000

_Atomic bool backlog_poll_needed;
_Atomic bool backlog_start_due;
static _Atomic int backlog_purger = PURGER_NONE;
static _Atomic bool backlog_pending;           /* noted, not yet taken by a pass */
static _Atomic size_t backlog_volume;          /* counted up to BACKLOG_THREAD_MIN */
static _Atomic unsigned backlog_threads;       /* the program's threads with heaps */
static _Atomic uint32_t backlog_failed_ms;     /* the last failed start (0: none) */
static _Atomic uint32_t backlog_last_ms;       /* the last inline pass */
static lock_t backlog_lock = LOCK_INIT(RANK_BACKLOG);
static pthread_cond_t backlog_cond = PTHREAD_COND_INITIALIZER;

/* Does the program itself run more than one thread? A thread that never
 * allocates a small block has no heap and does not count. */
static bool backlog_multithreaded(void) {
  if (&__libc_single_threaded && __libc_single_threaded) return false;
  return atomic_load(&backlog_threads) >= 2;
}

bool backlog_start_wanted(void) {
  uint32_t failed = atomic_load_relaxed(&backlog_failed_ms);
  return options.bg && atomic_load(&backlog_purger) == PURGER_NONE &&
         atomic_load(&backlog_volume) >= BACKLOG_THREAD_MIN && backlog_multithreaded() &&
         (!failed || os_now_ms() - failed >= BACKLOG_RETRY_MS);
}

/* The thread became wanted: the next allocation starts it. */
static void backlog_want_start(void) {
  atomic_store(&backlog_start_due, true);
  atomic_store(&backlog_poll_needed, true);
}

static void backlog_wake(void) {
  lock_acquire(&backlog_lock);
  pthread_cond_signal(&backlog_cond);
  lock_release(&backlog_lock);
}

void backlog_thread(int delta) {
  ASSERT(delta == 1 || delta == -1);
  unsigned n = atomic_fetch_add(&backlog_threads, (unsigned)delta) + (unsigned)delta;
  if (n >= 2) {
    if (backlog_start_wanted()) backlog_want_start();
  } else if (atomic_load(&backlog_purger) == PURGER_ASLEEP) {
    backlog_wake();                       /* it may retire */
  }
}

void backlog_threads_reset(unsigned n) { atomic_store_relaxed(&backlog_threads, n); }

void backlog_grew(size_t bytes) {
  if (atomic_load_relaxed(&backlog_volume) >= BACKLOG_THREAD_MIN) return;
  if (atomic_fetch_add(&backlog_volume, bytes) + bytes >= BACKLOG_THREAD_MIN && backlog_start_wanted())
    backlog_want_start();
}

void backlog_note(size_t bytes) {
  backlog_grew(bytes);
  if (atomic_load_relaxed(&backlog_pending)) return;
  atomic_store(&backlog_pending, true);
  int state = atomic_load(&backlog_purger);
  if (state == PURGER_ASLEEP) backlog_wake();
  else if (state == PURGER_NONE) atomic_store_relaxed(&backlog_poll_needed, true);
}

bool backlog_start_claim(void) {
  int expect = PURGER_NONE;
  return atomic_compare_exchange_strong(&backlog_purger, &expect, PURGER_STARTING);
}

void backlog_start_done(bool ok) {
  if (ok) {
    int starting = PURGER_STARTING;       /* the thread may already sleep */
    atomic_compare_exchange_strong(&backlog_purger, &starting, PURGER_AWAKE);
    return;
  }
  bool first = atomic_exchange(&backlog_failed_ms, os_now_ms() | 1) == 0;
  atomic_store(&backlog_purger, PURGER_NONE);
  /* A note that came while the thread was starting set pending and left
   * the work to it: the slow paths take it now. */
  atomic_store(&backlog_poll_needed, true);
  if (first && options.verbose)
    os_write_all(2, "strata: purge thread not started; decay runs inline\n", 52);
}

/* Is the purge thread running (started, not retired)? Never with bg=0. */
static bool backlog_thread_runs(void) { return atomic_load_relaxed(&backlog_purger) != PURGER_NONE; }

void backlog_pass_begin(void) { atomic_store_relaxed(&backlog_pending, false); }

bool backlog_sleep(void) {
  ASSERT(atomic_load(&backlog_purger) == PURGER_AWAKE || atomic_load(&backlog_purger) == PURGER_STARTING);
  /* ASLEEP is published before pending is read, and a note sets pending
   * before it reads the state (both seq_cst): a note is never missed. */
  lock_acquire(&backlog_lock);
  atomic_store(&backlog_purger, PURGER_ASLEEP);
  while (!atomic_load(&backlog_pending) && backlog_multithreaded())
    lock_wait(&backlog_lock, &backlog_cond);
  bool stay = atomic_load(&backlog_pending);
  /* Retiring: a note that finds NONE leaves the work to the slow paths, and
   * one that came between the last look at pending and NONE is caught by
   * poll_needed, set after NONE. */
  atomic_store(&backlog_purger, stay ? PURGER_AWAKE : PURGER_NONE);
  if (!stay) atomic_store(&backlog_poll_needed, true);
  lock_release(&backlog_lock);
  return stay;
}

bool backlog_inline_due(uint32_t now) {
  if (backlog_thread_runs()) {
    atomic_store_relaxed(&backlog_poll_needed, false);
    return false;
  }
  if (!atomic_load(&backlog_pending)) {              /* see the invariant above */
    if (backlog_start_wanted()) return false;        /* left for an allocation */
    atomic_store(&backlog_poll_needed, false);
    if (!atomic_load(&backlog_pending) && !backlog_start_wanted()) return false;
    atomic_store(&backlog_poll_needed, true);
    if (!atomic_load(&backlog_pending)) return false;
  }
  uint32_t last = atomic_load_relaxed(&backlog_last_ms);
  if (now - last < options.decay_ms / 2 || !atomic_compare_exchange_strong(&backlog_last_ms, &last, now))
    return false;
  atomic_store(&backlog_pending, false);
  return true;
}

void backlog_pass_end(bool more) {
  if (!more) return;
  atomic_store(&backlog_pending, true);
  atomic_store(&backlog_poll_needed, true);
}

/* The thread is gone in the child, which has one thread: its slow paths
 * run the decay until it starts a second one. */
static void backlog_fork_child(void) {
  pthread_cond_init(&backlog_cond, NULL);
  if (atomic_load_relaxed(&backlog_purger) == PURGER_NONE) return;
  atomic_store_relaxed(&backlog_purger, PURGER_NONE);
  atomic_store_relaxed(&backlog_pending, true);
  atomic_store_relaxed(&backlog_poll_needed, true);
}

const tier_t backlog_tier = {
  .name = "backlog",
  .locks = { &backlog_lock },
  .fork_child = backlog_fork_child,
};
