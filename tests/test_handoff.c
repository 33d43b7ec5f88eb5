/* test_handoff.c - memory stays bounded when one thread hands out blocks
 * that short-lived threads free, larson style.
 *
 * Each round, the main thread allocates a window of blocks per worker; the
 * workers (new threads every round) free every block of their window at
 * random while replacing it, then exit; the main thread frees the windows
 * (now blocks of the exited workers' spans, which it adopts). The main
 * thread's own spans get all their blocks back through remote frees. Active
 * memory must stop growing: the owner must notice such spans (it used to
 * keep them, undrained, behind newer spans: 411 MB after 300 rounds with a
 * 4 MB window). With small blocks only, the main thread's caches never run
 * empty, so it never refills them: it kept those spans queued, unseen (40 MB
 * after 150 rounds of 0.5 MB windows, growing). Uses the strata_ API (so it
 * runs under ThreadSanitizer too).
 *
 * usage: test_handoff [max_size [limit_mb [rounds]]]   (1000, 100, 150)
 */
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

enum { WORKERS = 8, WINDOW = 1000, REPLACE = 4000 };
static void *win[WORKERS][WINDOW];

static size_t max_size;

static void *worker(void *arg) {
  long t = (long)arg;
  uint64_t s = (uint64_t)t * 7919 + 1;
  for (int i = 0; i < REPLACE; i++) {
    size_t idx = rnd(&s) % WINDOW;
    strata_free(win[t][idx]);
    size_t size = 8 + rnd(&s) % (max_size - 7);
    char *p = strata_malloc(size);
    if (!p) abort();
    p[0] = p[size - 1] = 1;
    win[t][idx] = p;
  }
  return NULL;
}

static double active_mb(void) { return (double)stats_now().active / 1e6; }

int main(int argc, char **argv) {
  max_size = argc > 1 ? (size_t)atol(argv[1]) : 1000;
  double limit = argc > 2 ? atof(argv[2]) : 100;
  int rounds = argc > 3 ? atoi(argv[3]) : 150;
  if (max_size < 8) max_size = 8;
  uint64_t s = 42;
  for (int r = 0; r < rounds; r++) {
    for (int t = 0; t < WORKERS; t++)
      for (int i = 0; i < WINDOW; i++) {
        size_t size = 8 + rnd(&s) % (max_size - 7);
        win[t][i] = strata_malloc(size);
        if (!win[t][i]) abort();
        memset(win[t][i], 0, size < 16 ? size : 16);
      }
    pthread_t th[WORKERS];
    for (long t = 0; t < WORKERS; t++)
      if (pthread_create(&th[t], NULL, worker, (void *)t)) abort();
    for (int t = 0; t < WORKERS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < WORKERS; t++)
      for (int i = 0; i < WINDOW; i++) strata_free(win[t][i]);
  }
  double at_end = active_mb();
  /* After 150 rounds: the first broken allocator held 194 MB (sizes up to
   * 1000) and kept growing, 0.76 MB a round; the next one 76-91 MB, and
   * 40 MB with sizes up to 128, growing. The fixed one holds the main
   * thread's span cache (grown only while it ran empty) and free page runs
   * the decay has yet to purge, plus spans for a few windows: 30-69 MB and
   * 5 MB (the first figure depends on when the purge thread runs). */
  info("%d rounds, active %.1f MB at the end (limit %.0f)", rounds, at_end, limit);
  CHECK(at_end <= limit, "active memory keeps growing: %.1f MB after %d rounds", at_end, rounds);
  return checks_result("test_handoff");
}
