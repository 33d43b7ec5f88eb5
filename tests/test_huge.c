/* test_huge.c - the huge tier's cache of freed mappings: reused by a later
 * malloc that fits (not by calloc), unmapped by strata_collect or the decay,
 * and safe when threads free huge blocks of many sizes at once. Through the
 * strata_ API, so it also runs in sanitizer builds. */
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

/* A second thread of the program, alive and idle (it allocated, so it
 * counts: the purge thread runs only in a multithreaded program). */
static pthread_mutex_t idler_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idler_cond = PTHREAD_COND_INITIALIZER;
static bool idler_stop;
static pthread_t idler;
static void *idler_main(void *arg) {
  (void)arg;
  strata_free(strata_malloc(64));
  pthread_mutex_lock(&idler_lock);
  while (!idler_stop) pthread_cond_wait(&idler_cond, &idler_lock);
  pthread_mutex_unlock(&idler_lock);
  return NULL;
}
static void idler_start(void) {
  idler_stop = false;
  pthread_create(&idler, NULL, idler_main, NULL);
}
static void idler_end(void) {
  pthread_mutex_lock(&idler_lock);
  idler_stop = true;
  pthread_cond_signal(&idler_cond);
  pthread_mutex_unlock(&idler_lock);
  pthread_join(idler, NULL);
}

/* Waits up to 3 s for the mapped bytes to come down to `to`; the
 * milliseconds it took in *ms. With `poll`, an allocator call every 50 ms
 * (a single-threaded program returns memory from its own calls). */
static size_t mapped_wait(size_t to, bool poll, int *ms) {
  size_t mapped = stats_now().mapped;
  for (*ms = 0; *ms <= 3000 && mapped > to; *ms += 50) {
    usleep(50 * 1000);
    if (poll) strata_free(strata_malloc(40 << 10));
    mapped = stats_now().mapped;
  }
  return mapped;
}

/* A freed huge block is kept for a later malloc that it holds (not for a
 * calloc, whose block must be zero), and unmapped by strata_collect or by
 * the decay: with no allocator call while the program runs a second thread
 * (the purge thread does it), else at the program's own calls. Before, every
 * huge block was mapped, faulted in and unmapped (`huge`: 0.47 k blocks/s,
 * tcmalloc 10 k). */
static int case_huge_cache(void) {
  enum { HUGE = 64 << 20 };   /* PAGE: testlib.h */
  /* The polls of the single-threaded part allocate 40 KiB blocks: the large
   * tier's arena is mapped before mapped0 is taken, as in a program that has
   * used it (the case runs in a fresh process). */
  void *large = strata_malloc(40 << 10);
  /* This thread counts as one of the program's (threads count by their
   * heaps): with the idler, the program runs two, and the purge thread
   * starts. (Where stdio allocates through Strata it had a heap already.) */
  strata_free(strata_malloc(64));
  strata_collect();
  size_t mapped0 = stats_now().mapped;
  unsigned char *p = strata_malloc(HUGE);
  for (size_t i = 0; i < HUGE; i += PAGE) p[i] = 0x5a;
  strata_free(p);
  CHECK(stats_now().mapped >= mapped0 + HUGE, "a freed huge block was not kept");
  unsigned char *q = strata_malloc(HUGE - 3 * PAGE);
  CHECK(q == p, "a huge malloc did not reuse the freed mapping");
  CHECK(strata_malloc_usable_size(q) >= HUGE - 3 * PAGE, "usable size %zu", strata_malloc_usable_size(q));
  memset(q, 0x33, HUGE - 3 * PAGE);
  strata_free(q);
  unsigned char *z = strata_calloc(1, HUGE);
  size_t nonzero = 0;
  for (size_t i = 0; i < HUGE; i += 64) nonzero += z[i] != 0;
  CHECK(nonzero == 0, "calloc of a huge block after a free: %zu nonzero words of 64 bytes", nonzero);
  strata_free(z);
  strata_collect();
  size_t collected = stats_now().mapped;
  CHECK(collected <= mapped0 + (4 << 20), "strata_collect left %zu bytes mapped, %zu before", collected, mapped0);
  idler_start();
  p = strata_malloc(HUGE);
  p[0] = 1;
  strata_free(p);
  int ms;
  size_t mapped = mapped_wait(mapped0 + (4 << 20), false, &ms);
  idler_end();
  info("huge cache: reused; %zu mapped after strata_collect, %zu after %d ms of decay (%zu before)",
       collected, mapped, ms, mapped0);
  CHECK(mapped <= mapped0 + (4 << 20), "a cached huge block still mapped after 3 s: %zu, %zu before", mapped, mapped0);
  p = strata_malloc(HUGE);                /* the same, single-threaded */
  p[0] = 1;
  strata_free(p);
  mapped = mapped_wait(mapped0 + (4 << 20), true, &ms);
  info("huge cache, single-threaded: %zu mapped after %d ms of allocator calls", mapped, ms);
  CHECK(mapped <= mapped0 + (4 << 20), "a cached huge block still mapped after 3 s of allocator calls: %zu, %zu before",
        mapped, mapped0);
  strata_free(large);
  return 0;
}

/* Threads that free huge blocks of many sizes at once: each free may
 * evict (unmap) a mapping another thread just put in the cache, and a put
 * must not touch its mapping once the cache's lock is released (one read
 * of its size after the unlock crashed test_parity under RLIMIT_AS). */
enum { HUGE_RACE_THREADS = 4, HUGE_RACE_ROUNDS = 400 };
static void *huge_race_thread(void *arg) {
  unsigned seed = (unsigned)(size_t)arg;
  for (int r = 0; r < HUGE_RACE_ROUNDS; r++) {
    size_t n = ((size_t)33 << 20) + (size_t)(rand_r(&seed) % 96) * (1 << 20);
    unsigned char *p = strata_malloc(n);
    if (!p) continue;
    p[0] = p[n - 1] = (unsigned char)r;
    strata_free(p);
  }
  return NULL;
}
static int case_huge_cache_threads(void) {
  pthread_t t[HUGE_RACE_THREADS];
  for (int i = 0; i < HUGE_RACE_THREADS; i++) pthread_create(&t[i], NULL, huge_race_thread, (void *)(size_t)(i + 1));
  for (int i = 0; i < HUGE_RACE_THREADS; i++) pthread_join(t[i], NULL);
  strata_collect();
  strata_stats_t st = stats_now();
  CHECK(st.huge.allocated == 0 && st.huge.nmalloc == st.huge.nfree, "huge blocks left: %zu bytes, %llu mallocs, %llu frees",
        st.huge.allocated, (unsigned long long)st.huge.nmalloc, (unsigned long long)st.huge.nfree);
  info("huge cache, %d threads: %d blocks each", HUGE_RACE_THREADS, HUGE_RACE_ROUNDS);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"cache", case_huge_cache, 120},
    {"cache-threads", case_huge_cache_threads, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
