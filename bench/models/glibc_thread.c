/* Model of glibc's benchtests/bench-malloc-thread.c (as mimalloc-bench's
 * glibc-bench/bench-malloc-thread.c runs it: `glibc-thread N`).
 *
 * Shape kept:
 * - each thread owns a working set of 1024 slots (all empty at the start)
 *   and repeats: take the next slot from a fixed table of 4096 random slot
 *   numbers, free its block, malloc a new one whose size is the next of a
 *   fixed table of 8000 sizes, and write every byte of it;
 * - the sizes follow an inverse-square law over 4..32768 bytes (density
 *   ~ 1/x^2: half the blocks are under 8 bytes, the mean is about 36);
 * - the two tables are shared, and every thread walks them from the start,
 *   so all threads make the same sequence of requests;
 * - with N = 1 the main thread does the work itself (no thread is started),
 *   as the original does.
 * Changed: the original runs for 2 s and counts iterations; here each
 * thread does 5 x 10^6 x SCALE iterations (fixed work). The blocks left in
 * the working sets at the end are freed, outside the timed part. */
#include "model.h"

#define WORKING_SET 1024
#define NSIZES 8000
#define NOFFSETS (WORKING_SET * 4)
#define MIN_SIZE 4.0
#define MAX_SIZE 32768.0
#define ITERATIONS 5000000

static unsigned sizes[NSIZES];
static unsigned offsets[NOFFSETS];
static size_t iterations;

typedef struct {
  void *set[WORKING_SET];
  uint64_t ops;
} thread_arg;

static void *worker(void *arg)
{
  thread_arg *ta = arg;
  size_t oi = 0, si = 0;
  for (size_t it = 0; it < iterations; it++) {
    oi = oi + 1 < NOFFSETS ? oi + 1 : 0;
    si = si + 1 < NSIZES ? si + 1 : 0;
    unsigned slot = offsets[oi], n = sizes[si];
    free(ta->set[slot]);
    char *p = model_check(malloc(n), n);
    for (unsigned i = 0; i < n; i++)
      p[i] = (char)i;
    ta->set[slot] = p;
  }
  ta->ops = 2ull * iterations;
  return NULL;
}

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "glibc-thread", 256);
  iterations = model_scaled(ITERATIONS, a.scale);
  uint64_t rng = 88;
  /* Inverse square on [min, max]: invert the CDF of 1/x^2. */
  for (size_t i = 0; i < NSIZES; i++) {
    double u = rng_unit(&rng);
    sizes[i] = (unsigned)(1.0 / (1.0 / MIN_SIZE - u * (1.0 / MIN_SIZE - 1.0 / MAX_SIZE)));
  }
  for (size_t i = 0; i < NOFFSETS; i++)
    offsets[i] = (unsigned)rng_below(&rng, WORKING_SET);

  thread_arg *ta = model_check(calloc((size_t)a.threads, sizeof *ta), sizeof *ta * (size_t)a.threads);
  double t0 = model_now();
  model_run_workers(a.threads, worker, ta, sizeof *ta);
  double t1 = model_now();

  uint64_t ops = 0;
  for (int i = 0; i < a.threads; i++) {
    ops += ta[i].ops;
    for (size_t j = 0; j < WORKING_SET; j++)
      free(ta[i].set[j]);
  }
  free(ta);
  model_report(&a, t1 - t0, ops);
  return 0;
}
