/* test_exited_threads.c - the memory of exited threads is reused: blocks a
 * thread left live when it exited, freed by another thread, serve the next
 * threads' allocations (mapped memory does not grow). Through the strata_
 * API, so it also runs in sanitizer builds. */
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

/* A thread allocates and exits with its blocks live; they are freed from
 * here; the next thread's allocations reuse that memory. */
static void *hold_thread(void *arg) {
  void **v = arg;
  for (int i = 0; i < 100000; i++) v[i] = strata_malloc(200);
  return NULL;
}
static int case_exited_threads_reused(void) {
  static void *v[100000];
  pthread_t t;
  pthread_create(&t, NULL, hold_thread, v);
  pthread_join(t, NULL);
  for (int i = 0; i < 100000; i++) strata_free(v[i]);
  size_t mapped = stats_now().mapped;
  for (int round = 0; round < 5; round++) {
    pthread_create(&t, NULL, hold_thread, v);
    pthread_join(t, NULL);
    for (int i = 0; i < 100000; i++) strata_free(v[i]);
  }
  size_t after = stats_now().mapped;
  CHECK(after <= mapped + (8 << 20), "mapped grew from %zu to %zu over 5 threads", mapped, after);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"reused", case_exited_threads_reused, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
