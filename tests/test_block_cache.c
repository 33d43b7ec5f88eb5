/* test_block_cache.c - a thread's block cache: grown by batches of frees of
 * one class, it shrinks again once the thread works with other classes.
 * Through the strata_ API, so it also runs in sanitizer builds. */
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

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
static int case_grown_cache_shrinks(void) {
  pthread_t t;
  pthread_barrier_init(&grow_bar, NULL, 2);
  strata_collect();
  size_t base = stats_now().small.active;
  pthread_create(&t, NULL, grow_thread, NULL);
  pthread_barrier_wait(&grow_bar);
  strata_collect();
  size_t grown = stats_now().small.active - base;
  CHECK(grown >= 800 << 10, "a thread freeing batches of 1000 blocks of 1 KiB caches only %zu bytes", grown);
  pthread_barrier_wait(&grow_bar);
  pthread_barrier_wait(&grow_bar);
  strata_collect();
  size_t shrunk = stats_now().small.active - base;
  CHECK(shrunk < 256 << 10, "after 600 refills of another class the thread still holds %zu bytes", shrunk);
  info("grown cache: %zu bytes active, then %zu", grown, shrunk);
  pthread_barrier_wait(&grow_bar);
  pthread_join(t, NULL);
  pthread_barrier_destroy(&grow_bar);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"grown-cache-shrinks", case_grown_cache_shrinks, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
