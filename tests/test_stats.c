/* test_stats.c - statistics add up, resident memory falls after a burst is
 * freed (with strata_collect, and by decay alone within a bounded wait, also
 * when the program goes idle after its first burst), memory of exited
 * threads is reused, a thread's grown block cache shrinks again, and the
 * free pages of mostly free spans are returned. Through the strata_ API, so
 * it also runs in sanitizer builds. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "strata.h"

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { failures++; printf("FAIL: " __VA_ARGS__); printf("\n"); } } while (0)

static strata_stats_t snap(void) {
  strata_stats_t st;
  if (strata_stats(&st) != 0) { printf("FAIL: strata_stats\n"); exit(1); }
  return st;
}

/* The class size a small request gets (what usable size reports). */
static void test_allocated_adds_up(void) {
  enum { N = 3000 };
  static void *p[N];
  static size_t want[N];
  /* Freeing 8 MiB starts the purge thread, whose creation allocates
   * (glibc's thread descriptor): have that happen first. */
  strata_free(strata_malloc(9 << 20));
  strata_stats_t before = snap();
  size_t small = 0, large = 0, huge = 0;
  srand(7);
  for (int i = 0; i < N; i++) {
    size_t size = i % 100 == 99 ? (size_t)(40 << 10) + (size_t)rand() % (2 << 20)  /* large */
                : (size_t)rand() % 2048 + 1;
    if (i == N - 1) size = (size_t)20 << 20;                                    /* huge */
    p[i] = strata_malloc(size);
    want[i] = strata_malloc_usable_size(p[i]);
    if (size <= 32768) small += want[i];
    else if (size < ((size_t)16 << 20)) large += want[i];
    else huge += want[i];
  }
  strata_stats_t mid = snap();
  EXPECT(mid.small.allocated - before.small.allocated == small,
         "small allocated grew by %zu, expected %zu", mid.small.allocated - before.small.allocated, small);
  EXPECT(mid.large.allocated - before.large.allocated == large,
         "large allocated grew by %zu, expected %zu", mid.large.allocated - before.large.allocated, large);
  EXPECT(mid.huge.allocated - before.huge.allocated == huge,
         "huge allocated grew by %zu, expected %zu", mid.huge.allocated - before.huge.allocated, huge);
  EXPECT(mid.allocated == mid.small.allocated + mid.large.allocated + mid.huge.allocated, "total != sum of tiers");
  EXPECT(mid.small.nmalloc - before.small.nmalloc + mid.large.nmalloc - before.large.nmalloc +
         mid.huge.nmalloc - before.huge.nmalloc == N, "nmalloc did not count %d mallocs", N);
  size_t by_class = 0;
  for (int c = 0; c < STRATA_CLASSES; c++) by_class += mid.classes[c].live * mid.classes[c].size;
  EXPECT(by_class == mid.small.allocated, "class table (%zu) != small allocated (%zu)", by_class, mid.small.allocated);
  EXPECT(mid.active >= mid.allocated && mid.mapped >= mid.active, "allocated <= active <= mapped violated");
  for (int i = 0; i < N; i++) strata_free(p[i]);
  strata_stats_t after = snap();
  EXPECT(after.allocated == before.allocated, "allocated %zu after the frees, %zu before", after.allocated, before.allocated);
}

/* A burst of small blocks from 4 threads, freed by them but one in 10,000,
 * which keeps the segments mapped: only purging free page runs (the decay)
 * gives their memory back. */
enum { THREADS = 4, PER_THREAD = 64 << 20, KEEP_EVERY = 10000 };
static void *kept[THREADS][PER_THREAD / 64 / KEEP_EVERY + 1];
static void *burst_thread(void *arg) {
  void **keep = arg;
  size_t n = PER_THREAD / 64;
  void **v = strata_malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) { v[i] = strata_malloc(16 + i % 97); memset(v[i], 1, 16); }
  for (size_t i = 0; i < n; i++)
    if (i % KEEP_EVERY) strata_free(v[i]);
    else keep[i / KEEP_EVERY] = v[i];
  strata_free(v);
  return NULL;
}
static void free_kept(void) {
  for (int t = 0; t < THREADS; t++)
    for (size_t i = 0; i < sizeof kept[t] / sizeof kept[t][0]; i++) strata_free(kept[t][i]);
}
static size_t burst(void) {
  pthread_t t[THREADS];
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, burst_thread, kept[i]);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  return (size_t)THREADS * PER_THREAD;
}

static void test_resident_falls(void) {
  size_t bytes = burst();
  strata_collect();
  strata_stats_t st = snap();
  EXPECT(st.small.resident < bytes / 20, "after strata_collect small resident is %zu of a %zu burst", st.small.resident, bytes);
  free_kept();

  /* By decay alone: no allocator call while waiting (strata_stats reads). */
  burst();
  size_t resident = 0;
  for (int ms = 0; ms <= 3000; ms += 100) {
    usleep(100 * 1000);
    st = snap();
    resident = st.small.resident;
    if (resident < bytes / 20) { printf("decay: small resident %zu after %d ms\n", resident, ms + 100); break; }
  }
  EXPECT(resident < bytes / 20, "3 s after the burst small resident is still %zu of %zu", resident, bytes);
  free_kept();
}

/* The first burst of the process, freed by the threads that allocated it,
 * which then stay alive and idle: the purge thread has to start on its own
 * and return the memory (a lost wake-up once left it unstarted in most runs
 * of bench/memory.sh's burst). Runs first, before anything started it. */
static pthread_barrier_t idle_bar;
static void *idle_thread(void *arg) {
  unsigned seed = (unsigned)(size_t)arg;
  void *head = NULL, **tail = &head;
  for (size_t bytes = 0; bytes < PER_THREAD / 2;) {
    size_t n = 16 + rand_r(&seed) % 1009;
    void **p = strata_malloc(n);
    memset(p, 0x5a, n);
    *p = NULL;
    *tail = p;
    tail = p;
    bytes += n;
  }
  for (void *p = head, *next; p; p = next) {
    next = *(void **)p;
    strata_free(p);
  }
  pthread_barrier_wait(&idle_bar);      /* all freed */
  pthread_barrier_wait(&idle_bar);      /* idle until the main thread is done */
  return NULL;
}
static void test_first_burst_idle(void) {
  pthread_t t[THREADS];
  pthread_barrier_init(&idle_bar, NULL, THREADS + 1);
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, idle_thread, (void *)(size_t)(i + 1));
  pthread_barrier_wait(&idle_bar);
  size_t bytes = (size_t)THREADS * PER_THREAD / 2, resident = 0;
  for (int ms = 0; ms <= 2000; ms += 100) {
    usleep(100 * 1000);
    resident = snap().small.resident;
    if (resident < bytes / 20) { printf("first burst: small resident %zu after %d ms\n", resident, ms + 100); break; }
  }
  EXPECT(resident < bytes / 20, "2 s after the first burst small resident is still %zu of %zu", resident, bytes);
  pthread_barrier_wait(&idle_bar);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&idle_bar);
}

/* A thread allocates and exits with its blocks live; they are freed from
 * here; the next thread's allocations reuse that memory. */
static void *hold_thread(void *arg) {
  void **v = arg;
  for (int i = 0; i < 100000; i++) v[i] = strata_malloc(200);
  return NULL;
}
static void test_exited_threads_reused(void) {
  static void *v[100000];
  pthread_t t;
  pthread_create(&t, NULL, hold_thread, v);
  pthread_join(t, NULL);
  for (int i = 0; i < 100000; i++) strata_free(v[i]);
  size_t mapped = snap().mapped;
  for (int round = 0; round < 5; round++) {
    pthread_create(&t, NULL, hold_thread, v);
    pthread_join(t, NULL);
    for (int i = 0; i < 100000; i++) strata_free(v[i]);
  }
  size_t after = snap().mapped;
  EXPECT(after <= mapped + (8 << 20), "mapped grew from %zu to %zu over 5 threads", mapped, after);
}

/* A thread that frees and reallocates batches of one class keeps them in
 * its cache (its bound grew past the first 32 KiB of 1 KiB blocks), and
 * gives them back once it works with other classes: the spans holding them
 * stay active, measured from another thread after strata_collect (which
 * empties every span cache but not other threads' block caches). */
enum { BATCH = 1000, BATCH_ROUNDS = 10, OTHER = 4800 };
static pthread_barrier_t grow_bar;
static void *grow_thread(void *arg) {
  (void)arg;
  static void *p[OTHER];
  for (int r = 0; r < BATCH_ROUNDS; r++) {
    for (int i = 0; i < BATCH; i++) p[i] = strata_malloc(1000);
    for (int i = BATCH; i-- > 0;) strata_free(p[i]);
  }
  pthread_barrier_wait(&grow_bar);      /* main measures */
  pthread_barrier_wait(&grow_bar);
  for (int i = 0; i < OTHER; i++) p[i] = strata_malloc(4000);   /* 600 refills */
  for (int i = 0; i < OTHER; i++) strata_free(p[i]);
  pthread_barrier_wait(&grow_bar);      /* main measures */
  pthread_barrier_wait(&grow_bar);
  return NULL;
}
static void test_grown_cache_shrinks(void) {
  pthread_t t;
  pthread_barrier_init(&grow_bar, NULL, 2);
  strata_collect();
  size_t base = snap().small.active;
  pthread_create(&t, NULL, grow_thread, NULL);
  pthread_barrier_wait(&grow_bar);
  strata_collect();
  size_t grown = snap().small.active - base;
  EXPECT(grown >= 800 << 10, "a thread freeing batches of 1000 blocks of 1 KiB caches only %zu bytes", grown);
  pthread_barrier_wait(&grow_bar);
  pthread_barrier_wait(&grow_bar);
  strata_collect();
  size_t shrunk = snap().small.active - base;
  EXPECT(shrunk < 256 << 10, "after 600 refills of another class the thread still holds %zu bytes", shrunk);
  printf("grown cache: %zu bytes active, then %zu\n", grown, shrunk);
  pthread_barrier_wait(&grow_bar);
  pthread_join(t, NULL);
  pthread_barrier_destroy(&grow_bar);
}

/* Sparse spans: a thread frees most of its blocks of 2 KiB (8 to a span,
 * two to an OS page; no span empties), and the pages that hold only free
 * blocks go back to the OS: while the thread goes on allocating (also when
 * more blocks of an already purged span are freed later), before it fills
 * again with another size, at once with strata_collect, and by the purge
 * thread once the thread has exited, even if that thread was asleep. Kept
 * blocks keep their bytes; freed ones come back zeroed through calloc. */
#define SPARSE_BLOCKS 16384             /* 32 MiB */
#define SPARSE_SIZE 2000
static void *sparse_p[SPARSE_BLOCKS];
static void sparse_fill(void) {
  for (int i = 0; i < SPARSE_BLOCKS; i++) {
    sparse_p[i] = strata_malloc(SPARSE_SIZE);
    memset(sparse_p[i], (unsigned char)i, SPARSE_SIZE);
  }
}
/* How many of the kept blocks (i % 8 == 0) lost their bytes. */
static int sparse_kept_bad(void) {
  int bad = 0;
  for (int i = 0; i < SPARSE_BLOCKS; i += 8) {
    unsigned char *p = sparse_p[i];
    bad += p[0] != (unsigned char)i || p[SPARSE_SIZE - 1] != (unsigned char)i;
  }
  return bad;
}
/* Free the blocks i with i % 8 in [from, to). */
static void sparse_free(int from, int to) {
  for (int i = 0; i < SPARSE_BLOCKS; i++)
    if (i % 8 >= from && i % 8 < to && sparse_p[i]) { strata_free(sparse_p[i]); sparse_p[i] = NULL; }
}
static void sparse_check_refill(const char *when) {
  int bad = 0;
  for (int i = 0; i < SPARSE_BLOCKS; i++) {
    unsigned char *p = sparse_p[i];
    if (p) {
      bad += p[0] != (unsigned char)i || p[SPARSE_SIZE - 1] != (unsigned char)i;
      continue;
    }
    p = sparse_p[i] = strata_calloc(1, SPARSE_SIZE);
    for (int k = 0; k < SPARSE_SIZE; k += 8) bad += p[k] != 0;
    memset(p, (unsigned char)i, SPARSE_SIZE);
  }
  EXPECT(bad == 0, "%s: %d bytes wrong in kept or recycled blocks", when, bad);
}
/* Small resident memory once it is at most `limit`, or after 3 s; with
 * `busy`, the calling thread allocates 64 KiB of 64-byte blocks (spans too
 * small to purge) every 50 ms meanwhile: eight refills, which run its decay
 * and, when they take clean pages, its relief (a thread served by its
 * caches alone keeps its sparse spans until strata_collect or its exit). */
static size_t sparse_wait(size_t limit, bool busy, int *waited) {
  static void *more[61 * 1024];
  size_t resident = snap().small.resident;
  int ms = 0, n = 0;
  for (; ms <= 3000 && resident > limit; ms += 50) {
    usleep(50 * 1000);
    for (int j = 0; busy && j < 1024; j++) more[n++] = strata_malloc(64);
    resident = snap().small.resident;
  }
  while (n) strata_free(more[--n]);
  *waited = ms;
  return resident;
}
static void *sparse_thread(void *arg) {
  (void)arg;
  int ms;
  sparse_fill();
  size_t before = snap().small.resident;
  sparse_free(1, 4);                    /* two of every eight kept: 0 and 4 */
  sparse_free(5, 8);
  size_t half = sparse_wait(before * 6 / 10, true, &ms);
  printf("sparse spans: small resident %zu, then %zu after %d ms\n", before, half, ms);
  EXPECT(half <= before * 6 / 10, "6/8 of the blocks freed, small resident still %zu of %zu after 3 s", half, before);
  sparse_free(4, 5);                    /* then one more of each span */
  size_t quarter = sparse_wait(half * 3 / 4, true, &ms);
  printf("sparse spans: small resident %zu, then %zu after %d ms\n", half, quarter, ms);
  EXPECT(quarter <= half * 3 / 4, "7/8 of the blocks freed, small resident still %zu of %zu after 3 s", quarter, half);
  sparse_check_refill("after the decay");

  before = snap().small.resident;
  sparse_free(1, 8);
  strata_collect();
  size_t resident = snap().small.resident;
  printf("sparse spans: small resident %zu, then %zu after strata_collect\n", before, resident);
  EXPECT(resident <= before / 2, "7/8 of the blocks freed, small resident still %zu of %zu after strata_collect", resident, before);
  sparse_check_refill("after strata_collect");
  sparse_free(0, 8);
  return NULL;
}
/* Fill, free most, fill again with another size at once (the harness's
 * `memory` workload): the second fill grows the page heap, and before it
 * does the thread gives back the free pages of its sparse spans, young as
 * they are. Without that the second fill came on top of every page of the
 * first (67 MB here). */
static void *sparse_regrow_thread(void *arg) {
  (void)arg;
  enum { BIG = 20000, NBIG = 1600 };    /* 32 MB */
  static void *big[NBIG];
  sparse_fill();
  size_t before = snap().small.resident;
  sparse_free(1, 8);
  for (int i = 0; i < NBIG; i++) {
    big[i] = strata_malloc(BIG);
    memset(big[i], 0x77, BIG);
  }
  size_t after = snap().small.resident;
  printf("sparse spans, then another size at once: small resident %zu, then %zu\n", before, after);
  EXPECT(after <= before * 3 / 2, "a second fill of 32 MB came on top of the first: small resident %zu, then %zu",
         before, after);
  int bad = sparse_kept_bad();
  for (int i = 0; i < NBIG; i++) bad += ((unsigned char *)big[i])[BIG - 1] != 0x77;
  EXPECT(bad == 0, "%d blocks changed while the sparse spans were purged", bad);
  sparse_free(0, 8);
  for (int i = 0; i < NBIG; i++) strata_free(big[i]);
  return NULL;
}
static size_t sparse_before;
static void *sparse_exit_thread(void *arg) {
  (void)arg;
  sparse_fill();
  sparse_before = snap().small.resident;
  sparse_free(1, 8);
  return NULL;
}
static void test_sparse_spans_purged(void) {
  pthread_t t;
  pthread_create(&t, NULL, sparse_thread, NULL);
  pthread_join(t, NULL);
  strata_collect();                     /* the page heap keeps what it has: use it up first */
  pthread_create(&t, NULL, sparse_regrow_thread, NULL);
  pthread_join(t, NULL);

  /* The purge thread falls asleep once nothing is left to return; the
   * exiting thread's sparse spans must wake it (no allocator call after). */
  usleep(2000 * 1000);
  pthread_create(&t, NULL, sparse_exit_thread, NULL);
  pthread_join(t, NULL);
  int ms;
  size_t resident = sparse_wait(sparse_before / 2, false, &ms);
  printf("sparse spans of an exited thread: small resident %zu, then %zu after %d ms\n",
         sparse_before, resident, ms);
  EXPECT(resident <= sparse_before / 2, "an exited thread's sparse spans still hold %zu of %zu after 3 s",
         resident, sparse_before);
  int bad = sparse_kept_bad();
  EXPECT(bad == 0, "%d kept blocks of an exited thread changed", bad);
  sparse_free(0, 8);
}

/* The large tier reuses the pages a freed block left resident before it
 * faults in clean ones: a 1 MiB block (kept apart from its buddy by a live
 * neighbour) is free and purged, a dirty 8 MiB block is freed, and the
 * next request of 1 MiB goes into the dirty pages. The buddy's own choice,
 * the smallest free order, took the clean block: resident memory grew by
 * it while the dirty pages waited for the decay. Tried again if the decay
 * purged the freed block in between (it must have cooled for two passes). */
static void test_large_reuses_dirty(void) {
  enum { SMALL = 900 << 10, BIG = 7 << 20 };
  bool inside = false;
  size_t before = 0, after = 0;
  for (int attempt = 0; attempt < 3 && !inside; attempt++) {
    unsigned char *s1 = strata_malloc(SMALL), *s2 = strata_malloc(SMALL), *big = strata_malloc(BIG);
    memset(big, 1, BIG);
    strata_free(s1);
    strata_collect();                   /* every free page of the arenas is clean */
    strata_free(big);
    before = snap().large.resident;
    unsigned char *p = strata_malloc(SMALL);
    memset(p, 2, SMALL);
    after = snap().large.resident;
    inside = p >= big && p < big + BIG;
    strata_free(p);
    strata_free(s2);
  }
  printf("large tier: a 1 MiB request after a dirty 8 MiB free: resident %zu, then %zu\n", before, after);
  EXPECT(inside, "a 1 MiB block was not taken from the freed dirty 8 MiB block");
  EXPECT(after <= before + (64 << 10), "large resident grew from %zu to %zu though dirty free pages waited",
         before, after);
}

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
  size_t mapped = snap().mapped;
  for (*ms = 0; *ms <= 3000 && mapped > to; *ms += 50) {
    usleep(50 * 1000);
    if (poll) strata_free(strata_malloc(40 << 10));
    mapped = snap().mapped;
  }
  return mapped;
}

/* A freed huge block is kept for a later malloc that it holds (not for a
 * calloc, whose block must be zero), and unmapped by strata_collect or by
 * the decay: with no allocator call while the program runs a second thread
 * (the purge thread does it), else at the program's own calls. Before, every
 * huge block was mapped, faulted in and unmapped (`huge`: 0.47 k blocks/s,
 * tcmalloc 10 k). */
static void test_huge_cache(void) {
  enum { HUGE = 64 << 20, PAGE = 4096 };
  strata_collect();
  size_t mapped0 = snap().mapped;
  unsigned char *p = strata_malloc(HUGE);
  for (size_t i = 0; i < HUGE; i += PAGE) p[i] = 0x5a;
  strata_free(p);
  EXPECT(snap().mapped >= mapped0 + HUGE, "a freed huge block was not kept");
  unsigned char *q = strata_malloc(HUGE - 3 * PAGE);
  EXPECT(q == p, "a huge malloc did not reuse the freed mapping");
  EXPECT(strata_malloc_usable_size(q) >= HUGE - 3 * PAGE, "usable size %zu", strata_malloc_usable_size(q));
  memset(q, 0x33, HUGE - 3 * PAGE);
  strata_free(q);
  unsigned char *z = strata_calloc(1, HUGE);
  size_t nonzero = 0;
  for (size_t i = 0; i < HUGE; i += 64) nonzero += z[i] != 0;
  EXPECT(nonzero == 0, "calloc of a huge block after a free: %zu nonzero words of 64 bytes", nonzero);
  strata_free(z);
  strata_collect();
  size_t collected = snap().mapped;
  EXPECT(collected <= mapped0 + (4 << 20), "strata_collect left %zu bytes mapped, %zu before", collected, mapped0);
  idler_start();
  p = strata_malloc(HUGE);
  p[0] = 1;
  strata_free(p);
  int ms;
  size_t mapped = mapped_wait(mapped0 + (4 << 20), false, &ms);
  idler_end();
  printf("huge cache: reused; %zu mapped after strata_collect, %zu after %d ms of decay (%zu before)\n",
         collected, mapped, ms, mapped0);
  EXPECT(mapped <= mapped0 + (4 << 20), "a cached huge block still mapped after 3 s: %zu, %zu before", mapped, mapped0);
  p = strata_malloc(HUGE);                /* the same, single-threaded */
  p[0] = 1;
  strata_free(p);
  mapped = mapped_wait(mapped0 + (4 << 20), true, &ms);
  printf("huge cache, single-threaded: %zu mapped after %d ms of allocator calls\n", mapped, ms);
  EXPECT(mapped <= mapped0 + (4 << 20), "a cached huge block still mapped after 3 s of allocator calls: %zu, %zu before",
         mapped, mapped0);
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
static void test_huge_cache_threads(void) {
  pthread_t t[HUGE_RACE_THREADS];
  for (int i = 0; i < HUGE_RACE_THREADS; i++) pthread_create(&t[i], NULL, huge_race_thread, (void *)(size_t)(i + 1));
  for (int i = 0; i < HUGE_RACE_THREADS; i++) pthread_join(t[i], NULL);
  strata_collect();
  strata_stats_t st = snap();
  EXPECT(st.huge.allocated == 0 && st.huge.nmalloc == st.huge.nfree, "huge blocks left: %zu bytes, %llu mallocs, %llu frees",
         st.huge.allocated, (unsigned long long)st.huge.nmalloc, (unsigned long long)st.huge.nfree);
  printf("huge cache, %d threads: %d blocks each\n", HUGE_RACE_THREADS, HUGE_RACE_ROUNDS);
}

int main(void) {
  test_first_burst_idle();
  test_allocated_adds_up();
  test_resident_falls();
  test_exited_threads_reused();
  test_grown_cache_shrinks();
  test_sparse_spans_purged();
  test_large_reuses_dirty();
  test_huge_cache();
  test_huge_cache_threads();
  strata_stats_print(1);
  printf("test_stats: %s\n", failures ? "FAILED" : "ok");
  return failures != 0;
}
