/* test_sparse_spans.c - mostly free spans give their free pages back to the
 * OS (while the thread allocates, before it fills again with another size,
 * with strata_collect, and after it exited); kept blocks keep their bytes.
 * Through the strata_ API, so it also runs in sanitizer builds. */
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

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
  CHECK(bad == 0, "%s: %d bytes wrong in kept or recycled blocks", when, bad);
}
/* Small resident memory once it is at most `limit`, or after 3 s; with
 * `busy`, the calling thread allocates 64 KiB of 64-byte blocks (spans too
 * small to purge) every 50 ms meanwhile: eight refills, which run its decay
 * and, when they take clean pages, its relief (a thread served by its
 * caches alone keeps its sparse spans until strata_collect or its exit). */
static size_t sparse_wait(size_t limit, bool busy, int *waited) {
  static void *more[61 * 1024];
  size_t resident = stats_now().small.resident;
  int ms = 0, n = 0;
  for (; ms <= 3000 && resident > limit; ms += 50) {
    usleep(50 * 1000);
    for (int j = 0; busy && j < 1024; j++) more[n++] = strata_malloc(64);
    resident = stats_now().small.resident;
  }
  while (n) strata_free(more[--n]);
  *waited = ms;
  return resident;
}
static void *sparse_thread(void *arg) {
  (void)arg;
  int ms;
  sparse_fill();
  size_t before = stats_now().small.resident;
  sparse_free(1, 4);                    /* two of every eight kept: 0 and 4 */
  sparse_free(5, 8);
  size_t half = sparse_wait(before * 6 / 10, true, &ms);
  info("sparse spans: small resident %zu, then %zu after %d ms", before, half, ms);
  CHECK(half <= before * 6 / 10, "6/8 of the blocks freed, small resident still %zu of %zu after 3 s", half, before);
  sparse_free(4, 5);                    /* then one more of each span */
  size_t quarter = sparse_wait(half * 3 / 4, true, &ms);
  info("sparse spans: small resident %zu, then %zu after %d ms", half, quarter, ms);
  CHECK(quarter <= half * 3 / 4, "7/8 of the blocks freed, small resident still %zu of %zu after 3 s", quarter, half);
  sparse_check_refill("after the decay");

  before = stats_now().small.resident;
  sparse_free(1, 8);
  strata_collect();
  size_t resident = stats_now().small.resident;
  info("sparse spans: small resident %zu, then %zu after strata_collect", before, resident);
  CHECK(resident <= before / 2, "7/8 of the blocks freed, small resident still %zu of %zu after strata_collect", resident, before);
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
  size_t before = stats_now().small.resident;
  sparse_free(1, 8);
  for (int i = 0; i < NBIG; i++) {
    big[i] = strata_malloc(BIG);
    memset(big[i], 0x77, BIG);
  }
  size_t after = stats_now().small.resident;
  info("sparse spans, then another size at once: small resident %zu, then %zu", before, after);
  CHECK(after <= before * 3 / 2, "a second fill of 32 MB came on top of the first: small resident %zu, then %zu",
        before, after);
  int bad = sparse_kept_bad();
  for (int i = 0; i < NBIG; i++) bad += ((unsigned char *)big[i])[BIG - 1] != 0x77;
  CHECK(bad == 0, "%d blocks changed while the sparse spans were purged", bad);
  sparse_free(0, 8);
  for (int i = 0; i < NBIG; i++) strata_free(big[i]);
  return NULL;
}
static size_t sparse_before;
static void *sparse_exit_thread(void *arg) {
  (void)arg;
  sparse_fill();
  sparse_before = stats_now().small.resident;
  sparse_free(1, 8);
  return NULL;
}
static int case_sparse_spans_purged(void) {
  pthread_t t;
  /* This thread counts as one of the program's (threads count by their
   * heaps): with a sparse thread, the program runs two, and the purge
   * thread starts. (Where stdio allocates through Strata it had a heap
   * already.) */
  strata_free(strata_malloc(64));
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
  info("sparse spans of an exited thread: small resident %zu, then %zu after %d ms",
       sparse_before, resident, ms);
  CHECK(resident <= sparse_before / 2, "an exited thread's sparse spans still hold %zu of %zu after 3 s",
        resident, sparse_before);
  int bad = sparse_kept_bad();
  CHECK(bad == 0, "%d kept blocks of an exited thread changed", bad);
  sparse_free(0, 8);
  return 0;
}

/* strata_collect gives back the free pages of an exited thread's sparse
 * spans at once, young as they are (the decay would wait its time). */
static int case_exited_then_collect(void) {
  strata_free(strata_malloc(64));
  pthread_t t;
  double t0 = now_s();
  pthread_create(&t, NULL, sparse_exit_thread, NULL);
  pthread_join(t, NULL);
  strata_collect();
  double took = now_s() - t0;
  size_t resident = stats_now().small.resident;
  info("sparse spans of an exited thread: small resident %zu, then %zu after strata_collect (%.0f ms)",
       sparse_before, resident, took * 1000);
  if (took > 0.2) return skip("the thread took %.0f ms: the decay may have purged first", took * 1000);
  CHECK(resident <= sparse_before / 2, "strata_collect left %zu of %zu of an exited thread's sparse spans",
        resident, sparse_before);
  CHECK(sparse_kept_bad() == 0, "kept blocks of an exited thread changed");
  sparse_free(0, 8);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"sparse-spans-purged", case_sparse_spans_purged, 240},
    {"exited-then-collect", case_exited_then_collect, 60},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
