/* test_threads.c - thousands of short-lived threads.
 *
 * usage: test_threads [nthreads]   (default 5000, run in waves of 8)
 *
 * Each thread allocates and frees a little through the strata_* API; some
 * leave a block for the main thread to free after they exit (a free into
 * the heap of a dead thread); some begin with strata_free (or strata_realloc)
 * of a block that a thread of the previous wave allocated, so that their
 * first call into Strata is a remote free; some make no call at all until
 * their pthread key destructor runs. Every thread sets two pthread keys
 * of the test whose destructors allocate and free, and re-arm themselves
 * once, so that they run again after Strata's own thread teardown.
 *
 * Resident memory must stay bounded: below 200 MiB at the end, and growing
 * by at most 32 MiB between the middle and the end of the run (a heap that
 * is never reclaimed when its thread exits shows up here). The RSS checks
 * are skipped under ThreadSanitizer, whose shadow memory dominates RSS.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

#define WAVE 8

/* Does p[0, n) hold testlib's pattern for `tag`? */
static int verify(const void *p, size_t n, unsigned tag) { return pattern_mismatch(p, n, tag) == n; }

/* Blocks handed from one thread to another (or to main). */
typedef struct {
  void *p;
  size_t n;
  unsigned tag;
} handoff_t;

typedef struct {
  int id;
  handoff_t first_free; /* freed (or realloc'd) as this thread's first call */
  handoff_t leftover;   /* left for main to free */
} targ_t;

static pthread_key_t key_early, key_late;
static atomic_long dtor_runs;

/* Key destructor: allocates and frees, then re-arms itself once so that it
 * also runs in the next destructor round, after Strata's own teardown. */
static void key_dtor(void *v, pthread_key_t k) {
  uintptr_t round = (uintptr_t)v & 1;
  void *blk = (void *)((uintptr_t)v & ~(uintptr_t)1);
  if (blk && blk != (void *)(uintptr_t)0x10) {
    if (!verify(blk, 48, 0x5a)) failf("key block %p corrupted", blk);
    strata_free(blk);
  }
  for (int i = 0; i < 8; i++) {
    size_t n = (size_t)16 << i;
    char *p = strata_malloc(n);
    if (!p) {
      failf("malloc(%zu) in a key destructor failed", n);
      continue;
    }
    fill_pattern(p, n, (unsigned)i);
    if (!verify(p, n, (unsigned)i)) failf("block corrupted in a key destructor");
    strata_free(p);
  }
  void *big = strata_malloc(100 * KiB);
  if (!big) failf("malloc(100 KiB) in a key destructor failed");
  strata_free(big);
  atomic_fetch_add_explicit(&dtor_runs, 1, memory_order_relaxed);
  if (round == 0) {
    char *again = strata_malloc(48);
    if (!again) {
      failf("malloc in a key destructor failed");
      return;
    }
    fill_pattern(again, 48, 0x5a);
    pthread_setspecific(k, (void *)((uintptr_t)again | 1));
  }
}
static void dtor_early(void *v) { key_dtor(v, key_early); }
static void dtor_late(void *v) { key_dtor(v, key_late); }

static void *thread_main(void *arg) {
  targ_t *a = arg;
  uint64_t r = mix64((uint64_t)a->id * 0x1234567 + 99);
  int kind = a->id % 7;

  if (kind == 6) {
    /* No Strata call at all until the key destructors run at exit. */
    pthread_setspecific(key_early, (void *)(uintptr_t)0x10);
    pthread_setspecific(key_late, (void *)(uintptr_t)0x10);
    return NULL;
  }

  /* First call: free (or realloc) a block of a thread that has exited. */
  if (a->first_free.p) {
    handoff_t *h = &a->first_free;
    if (!verify(h->p, h->n, h->tag)) failf("thread %d: handed-off block %p corrupted", a->id, h->p);
    if (kind == 1) {
      char *q = strata_realloc(h->p, h->n * 2 + 1);
      if (!q) failf("thread %d: realloc of a handed-off block failed", a->id);
      else {
        if (!verify(q, h->n, h->tag)) failf("thread %d: realloc lost data", a->id);
        strata_free(q);
      }
    } else {
      strata_free(h->p);
    }
    h->p = NULL;
  }

  char *kb = strata_malloc(48);
  if (kb) fill_pattern(kb, 48, 0x5a);
  pthread_setspecific(key_early, kb);
  pthread_setspecific(key_late, (void *)(uintptr_t)0x10);

  enum { N = 40 };
  void *v[N];
  size_t vn[N];
  for (int i = 0; i < N; i++) {
    r = mix64(r);
    size_t n = 1 + r % 2048;
    if (i == 0 && a->id % 16 == 3) n = 300 * KiB;
    if (i == 1 && a->id % 64 == 5) n = 2 * MiB;
    if (i == 2 && a->id % 500 == 7) n = 20 * MiB;
    if (i == 3 && a->id % 8 == 1) n = 40 * KiB;
    v[i] = (i % 5 == 4) ? strata_calloc(n, 1) : strata_malloc(n);
    vn[i] = n;
    if (!v[i]) {
      failf("thread %d: malloc(%zu) failed", a->id, n);
      continue;
    }
    fill_pattern(v[i], n < 4096 ? n : 4096, (unsigned)i);
  }
  for (int i = 0; i < N; i += 3) {
    if (!v[i]) continue;
    void *q = strata_realloc(v[i], vn[i] + 100);
    if (q) {
      if (!verify(q, vn[i] < 4096 ? vn[i] : 4096, (unsigned)i)) failf("thread %d: realloc lost data", a->id);
      v[i] = q;
    }
  }
  for (int i = 0; i < N; i++) {
    if (!v[i]) continue;
    if (!verify(v[i], vn[i] < 4096 ? vn[i] : 4096, (unsigned)i))
      failf("thread %d: block %d (%zu bytes) corrupted", a->id, i, vn[i]);
    strata_free(v[i]);
  }

  /* Leave blocks behind: one for main, one for a thread of the next wave. */
  if (kind == 0 || kind == 3 || kind == 5) {
    size_t n = (kind == 5) ? 70 * KiB : 16 + (size_t)(a->id % 900);
    void *p = strata_malloc(n);
    if (p) {
      fill_pattern(p, n, (unsigned)a->id);
      a->leftover = (handoff_t){p, n, (unsigned)a->id};
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  int total = argc > 1 ? atoi(argv[1]) : 5000;
  if (total < WAVE * 2) total = WAVE * 2;

  /* One key before Strata's first call in this program and one after it, so
   * that the test's destructors run both before and after Strata's own (key
   * destructors run in creation order; re-arming adds a later round). */
  pthread_key_create(&key_early, dtor_early);
  void *warm = strata_malloc(64);
  strata_free(warm);
  pthread_key_create(&key_late, dtor_late);

  targ_t *args = strata_calloc((size_t)total, sizeof *args);
  REQUIRE(args, "calloc failed");
  handoff_t pending[WAVE];
  memset(pending, 0, sizeof pending);
  long rss_start = status_kib("VmRSS:"), rss_mid = -1;
  int half = (total / WAVE / 2) * WAVE;

  for (int base = 0; base < total; base += WAVE) {
    pthread_t t[WAVE];
    int n = total - base < WAVE ? total - base : WAVE;
    for (int i = 0; i < n; i++) {
      targ_t *a = &args[base + i];
      a->id = base + i;
      if (a->id % 7 != 6) { /* those make no call before their exit */
        a->first_free = pending[i]; /* allocated by a thread of the last wave */
        pending[i].p = NULL;
      }
      int e = pthread_create(&t[i], NULL, thread_main, a);
      REQUIRE(e == 0, "pthread_create: %s", strerror(e));
    }
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++) {
      targ_t *a = &args[base + i];
      if (a->first_free.p) failf("thread %d did not free its handed-off block", a->id);
      if (!a->leftover.p) continue;
      handoff_t h = a->leftover;
      a->leftover.p = NULL;
      /* Alternate: main frees it now, or the next wave's thread frees it
       * (or reallocs it) as its first call. */
      if (a->id % 2 == 0 && !pending[i].p) {
        pending[i] = h;
      } else {
        if (!verify(h.p, h.n, h.tag)) failf("leftover of thread %d corrupted", a->id);
        strata_free(h.p);
      }
    }
    if (base + WAVE == half) rss_mid = status_kib("VmRSS:");
  }
  for (int i = 0; i < WAVE; i++)
    if (pending[i].p) {
      if (!verify(pending[i].p, pending[i].n, pending[i].tag)) failf("pending block corrupted");
      strata_free(pending[i].p);
    }
  strata_free(args);
  long rss_end = status_kib("VmRSS:");

  long expect_dtors = (long)total * 4; /* two keys, two rounds each */
  long runs = atomic_load(&dtor_runs);
  if (runs != expect_dtors)
    failf("key destructors ran %ld times, expected %ld", runs, expect_dtors);

  info("%d threads, RSS start %ld KiB, middle %ld KiB, end %ld KiB%s", total, rss_start, rss_mid,
       rss_end, UNDER_TSAN ? " (not checked under TSan)" : "");
  if (!UNDER_TSAN && rss_end > 0) {
    if (rss_end > 200 * 1024) failf("RSS at the end is %ld KiB > 200 MiB", rss_end);
    if (rss_mid > 0 && rss_end - rss_mid > 32 * 1024)
      failf("RSS grew by %ld KiB between the middle and the end (> 32 MiB)", rss_end - rss_mid);
  }
  return checks_result("test_threads");
}
