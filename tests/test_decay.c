/* test_decay.c - resident memory falls after a burst of small blocks is
 * freed: at once with strata_collect, by the decay alone within a bounded
 * wait, and when the program goes idle after its first burst. Through the
 * strata_ API, so it also runs in sanitizer builds. */
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

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

static int case_resident_falls(void) {
  size_t bytes = burst();
  strata_collect();
  strata_stats_t st = stats_now();
  CHECK(st.small.resident < bytes / 20, "after strata_collect small resident is %zu of a %zu burst", st.small.resident, bytes);
  free_kept();

  /* By decay alone: no allocator call while waiting (strata_stats reads). */
  burst();
  size_t resident = 0;
  for (int ms = 0; ms <= 3000; ms += 100) {
    usleep(100 * 1000);
    st = stats_now();
    resident = st.small.resident;
    if (resident < bytes / 20) { info("decay: small resident %zu after %d ms", resident, ms + 100); break; }
  }
  CHECK(resident < bytes / 20, "3 s after the burst small resident is still %zu of %zu", resident, bytes);
  free_kept();
  return 0;
}

/* The first burst of the process, freed by the threads that allocated it,
 * which then stay alive and idle: the purge thread has to start on its own
 * and return the memory (a lost wake-up once left it unstarted in most runs
 * of bench/memory.sh's burst). In a fresh process (its case's child),
 * before anything started it. */
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
static int case_first_burst_idle(void) {
  pthread_t t[THREADS];
  pthread_barrier_init(&idle_bar, NULL, THREADS + 1);
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, idle_thread, (void *)(size_t)(i + 1));
  pthread_barrier_wait(&idle_bar);
  size_t bytes = (size_t)THREADS * PER_THREAD / 2, resident = 0;
  for (int ms = 0; ms <= 2000; ms += 100) {
    usleep(100 * 1000);
    resident = stats_now().small.resident;
    if (resident < bytes / 20) { info("first burst: small resident %zu after %d ms", resident, ms + 100); break; }
  }
  CHECK(resident < bytes / 20, "2 s after the first burst small resident is still %zu of %zu", resident, bytes);
  pthread_barrier_wait(&idle_bar);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&idle_bar);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"first-burst-idle", case_first_burst_idle, 120},
    {"resident-falls", case_resident_falls, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
