/* decay.c - the purge thread (see decay.h).
 *
 * Lock: decay_lock guards the thread's sleep; a leaf, never held while
 * calling into the other layers (which take their own locks).
 */
#include "decay.h"
#include "heap.h"
#include "huge.h"
#include "init.h"
#include "large.h"
#include "os.h"
#include "pageheap.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>

enum { THREAD_NONE = 0, THREAD_STARTING, THREAD_AWAKE, THREAD_ASLEEP };

/* glibc's flag: 1 while the process has never had a second thread. Weak:
 * other C libraries lack it. */
extern char __libc_single_threaded __attribute__((weak));

static _Atomic int decay_thread = THREAD_NONE;
static _Atomic bool decay_pending;      /* purgeable memory was noted */
_Atomic bool decay_poll_needed;         /* decay_poll has work: no thread runs */
_Atomic bool decay_start_due;
__thread uint8_t decay_polls;           /* this thread's polls, counted */
/* The thread starts once this much has been taken or freed, so a small
 * program never pays for it; until then the slow paths run the decay. */
#define DECAY_THREAD_MIN (8 * MiB)
static _Atomic size_t decay_volume;     /* counted up to DECAY_THREAD_MIN */
static _Atomic uint32_t decay_last_ms;  /* last inline pass (bg=0) */
/* When pthread_create last failed (0: never); it is tried again a while
 * later, as the failure (no memory, a thread limit) may pass. */
#define DECAY_RETRY_MS 1000
static _Atomic uint32_t decay_failed_ms;
static pthread_mutex_t decay_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t decay_cond = PTHREAD_COND_INITIALIZER;

bool decay_run(uint32_t now) {
  bool younger = heap_sweep_abandoned();
  heap_decay(now, options.decay_ms, &younger);
  pageheap_decay(now, options.decay_ms, &younger);
  large_decay(now, options.decay_ms, &younger);
  huge_decay(now, &younger);
  return younger;
}

/* Does the program itself run more than one thread? The purge thread is
 * never the one that makes a process multithreaded: a single-threaded
 * process must keep what only such a process may do (unshare(CLONE_NEWUSER),
 * fork from a signal handler, glibc's and libstdc++'s unlocked paths while
 * __libc_single_threaded is 1). Threads are counted by their heaps, so a
 * thread that never allocates a small block does not count. */
static bool decay_multithreaded(void) {
  if (&__libc_single_threaded && __libc_single_threaded) return false;
  return heap_threads() >= 2;
}

/* Wake up every half decay period while something is pending; sleep on the
 * condition when everything free has been returned, or end once the
 * program is down to one thread (the slow paths then run the decay, and a
 * later second thread starts the purge thread again). */
static void *decay_main(void *arg) {
  (void)arg;
  prctl(PR_SET_NAME, "strata-purge", 0, 0, 0);
  uint32_t tick = options.decay_ms / 2 < 10 ? 10 : options.decay_ms / 2;
  for (;;) {
    os_sleep_ms(tick);
    atomic_store_relaxed(&decay_pending, false);
    if (decay_run(os_now_ms())) continue;
    /* ASLEEP is published before pending is read, and decay_note sets
     * pending before it reads the state (both seq_cst): a note is never
     * missed. */
    pthread_mutex_lock(&decay_lock);
    atomic_store(&decay_thread, THREAD_ASLEEP);
    while (!atomic_load(&decay_pending) && decay_multithreaded())
      pthread_cond_wait(&decay_cond, &decay_lock);
    if (!atomic_load(&decay_pending)) break;
    atomic_store(&decay_thread, THREAD_AWAKE);
    pthread_mutex_unlock(&decay_lock);
  }
  /* Retire: a note that finds NONE leaves the work to the slow paths, and
   * one that came between the last look at pending and NONE is caught by
   * poll_needed, set after NONE. */
  atomic_store(&decay_thread, THREAD_NONE);
  atomic_store(&decay_poll_needed, true);
  pthread_mutex_unlock(&decay_lock);
  return NULL;
}

/* Is the thread wanted and not started? (Then decay_poll_needed stays set
 * until an allocation starts it.) */
static bool decay_start_wanted(void) {
  uint32_t failed = atomic_load_relaxed(&decay_failed_ms);
  return options.bg_thread && atomic_load(&decay_thread) == THREAD_NONE &&
         atomic_load(&decay_volume) >= DECAY_THREAD_MIN && decay_multithreaded() &&
         (!failed || os_now_ms() - failed >= DECAY_RETRY_MS);
}

/* The thread became wanted: the next allocation starts it. */
static void decay_want_start(void) {
  atomic_store(&decay_start_due, true);
  atomic_store(&decay_poll_needed, true);
}

void decay_threads_changed(unsigned threads) {
  if (threads >= 2) {
    if (decay_start_wanted()) decay_want_start();
  } else if (atomic_load(&decay_thread) == THREAD_ASLEEP) {   /* let it retire */
    pthread_mutex_lock(&decay_lock);
    pthread_cond_signal(&decay_cond);
    pthread_mutex_unlock(&decay_lock);
  }
}

void decay_note_growth(size_t bytes) {
  if (atomic_load_relaxed(&decay_volume) >= DECAY_THREAD_MIN) return;
  if (atomic_fetch_add(&decay_volume, bytes) + bytes >= DECAY_THREAD_MIN && decay_start_wanted())
    decay_want_start();
}

void decay_note(size_t bytes) {
  decay_note_growth(bytes);
  if (atomic_load_relaxed(&decay_pending)) return;
  atomic_store(&decay_pending, true);
  int state = atomic_load(&decay_thread);
  if (state == THREAD_ASLEEP) {
    pthread_mutex_lock(&decay_lock);
    pthread_cond_signal(&decay_cond);
    pthread_mutex_unlock(&decay_lock);
  } else if (state == THREAD_NONE || !options.bg_thread) {
    atomic_store_relaxed(&decay_poll_needed, true);
  }
}

/* The thread blocks every signal: they are the program's, not ours. */
static void decay_start(void) {
  int expect = THREAD_NONE;
  if (!atomic_compare_exchange_strong(&decay_thread, &expect, THREAD_STARTING)) return;
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * KiB);
  pthread_t t;
  bool ok = pthread_create(&t, &attr, decay_main, NULL) == 0;
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (ok) {
    int starting = THREAD_STARTING;     /* the thread may already sleep */
    atomic_compare_exchange_strong(&decay_thread, &starting, THREAD_AWAKE);
    return;
  }
  bool first = atomic_exchange(&decay_failed_ms, os_now_ms() | 1) == 0;
  atomic_store(&decay_thread, THREAD_NONE);
  if (first && options.verbose)
    os_write_all(2, "strata: purge thread not started; decay runs inline\n", 52);
}

void decay_poll_slow(bool may_start) {
  if (may_start) {
    atomic_store_relaxed(&decay_start_due, false);   /* sampled polls still look */
    if (decay_start_wanted()) {
      int saved = errno;                /* pthread_create may fail with ENOMEM */
      decay_start();
      errno = saved;
    }
  }
  int state = atomic_load_relaxed(&decay_thread);
  if (options.bg_thread && state != THREAD_NONE) {
    atomic_store_relaxed(&decay_poll_needed, false);
    return;
  }
  /* No thread: the slow paths run the decay, a pass at most every half
   * decay period.
   * Invariant: while pending is set or the thread is wanted, poll_needed is
   * set (else nothing would ever run the decay or start the thread: a note
   * finding pending set leaves the flags alone). So the flag is cleared only
   * when neither holds, and both are read again after it; a note between
   * the two sets it again. (The flag is shared: it is written only when it
   * changes.) */
  if (!atomic_load(&decay_pending)) {
    if (decay_start_wanted()) return;   /* left for an allocation */
    atomic_store(&decay_poll_needed, false);
    if (!atomic_load(&decay_pending) && !decay_start_wanted()) return;
    atomic_store(&decay_poll_needed, true);
    if (!atomic_load(&decay_pending)) return;
  }
  uint32_t now = os_now_ms(), last = atomic_load_relaxed(&decay_last_ms);
  if (now - last < options.decay_ms / 2 ||
      !atomic_compare_exchange_strong(&decay_last_ms, &last, now)) return;
  atomic_store(&decay_pending, false);
  if (decay_run(now)) {
    atomic_store(&decay_pending, true);
    atomic_store(&decay_poll_needed, true);
  }
}

void decay_fork_prepare(void) { pthread_mutex_lock(&decay_lock); }
void decay_fork_parent(void) { pthread_mutex_unlock(&decay_lock); }
/* The thread is gone in the child, which has one thread: its slow paths run
 * the decay until it starts a second one. */
void decay_fork_child(void) {
  pthread_mutex_init(&decay_lock, NULL);
  pthread_cond_init(&decay_cond, NULL);
  if (atomic_load_relaxed(&decay_thread) == THREAD_NONE) return;
  atomic_store_relaxed(&decay_thread, THREAD_NONE);
  atomic_store_relaxed(&decay_pending, true);
  atomic_store_relaxed(&decay_poll_needed, true);
}
