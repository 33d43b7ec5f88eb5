/* test_exited_threads.c - the memory of exited threads is reused: blocks a
 * thread left live when it exited, freed by another thread, serve the next
 * threads' allocations (mapped memory does not grow), and a thread that
 * only frees them does not keep their spans. Through the strata_
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

/* A thread allocates blocks of a class this thread never uses and exits;
 * this thread frees them all. It does not keep their spans (it would never
 * allocate from them): each goes back to the page heap with its last
 * block, with no collect, so the small tier's active bytes come back to
 * what they were before the thread. */
enum { BYSTANDER_BLOCKS = 20000, BYSTANDER_SIZE = 2000 };
static void *hold_big_thread(void *arg) {
  void **v = arg;
  for (int i = 0; i < BYSTANDER_BLOCKS; i++) v[i] = strata_malloc(BYSTANDER_SIZE);
  return NULL;
}
static int case_freed_by_a_bystander(void) {
  static void *v[BYSTANDER_BLOCKS];
  size_t before = stats_now().small.active;
  pthread_t t;
  pthread_create(&t, NULL, hold_big_thread, v);
  pthread_join(t, NULL);
  size_t held = stats_now().small.active;
  for (int i = 0; i < BYSTANDER_BLOCKS; i++) strata_free(v[i]);
  size_t after = stats_now().small.active;
  info("small tier active: %zu KiB before the thread, %zu KiB when it exited, %zu KiB after the frees",
       before / 1024, held / 1024, after / 1024);
  CHECK(held >= before + (size_t)BYSTANDER_BLOCKS * BYSTANDER_SIZE / 2, "the thread's blocks were not counted");
  CHECK(after <= before + (1 << 20), "%zu KiB of spans still active after every block was freed (%zu before)",
        after / 1024, before / 1024);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"reused", case_exited_threads_reused, 120},
    {"freed-by-a-bystander", case_freed_by_a_bystander, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
