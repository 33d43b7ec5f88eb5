/* Model of larson (Paul Larson's server benchmark, Hoard suite), as
 * mimalloc-bench runs it: `larson 5 8 1000 5000 100 4141 N`.
 *
 * Shape kept:
 * - main fills N arrays of 5000 blocks of 8..999 bytes (uniform), shuffles
 *   them and replaces 4 x 5000 x N of them at random (the warm-up), so the
 *   first workers free blocks that main allocated;
 * - each of N workers owns one array and does 5000 x 100 rounds of: pick a
 *   random slot, free its block, malloc a new one of 8..999 bytes, write it;
 * - after its rounds a worker starts a fresh thread that takes over the
 *   same array, and exits: every block lives on into the next thread, which
 *   frees it (a free to a thread that has gone), as in the original, where
 *   a thread that finishes its rounds starts its successor.
 * Changed: the original runs for a fixed 5 s and counts allocations; here
 * each array goes through a fixed number of thread generations (10 x SCALE),
 * so the run is fixed work and its time is the figure. Every block is
 * written at its first, second and last byte (the original writes the
 * first two). Successors are detached rather than never joined. */
#include "model.h"

#define SLOTS 5000
#define ROUNDS 100
#define MIN_SIZE 8
#define MAX_SIZE 1000

typedef struct {
  char **blocks;
  uint64_t rng;
  size_t generations_left;
  uint64_t ops;
} lineage;

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int lineages_left;

static inline size_t block_size(uint64_t *rng)
{
  return MIN_SIZE + rng_below(rng, MAX_SIZE - MIN_SIZE);
}

static void *worker(void *arg)
{
  lineage *l = arg;
  for (size_t i = 0; i < (size_t)SLOTS * ROUNDS; i++) {
    size_t victim = rng_below(&l->rng, SLOTS);
    free(l->blocks[victim]);
    size_t n = block_size(&l->rng);
    char *p = model_check(malloc(n), n);
    p[1] = 'b';
    model_touch(p, n, 'a');
    l->blocks[victim] = p;
  }
  l->ops += 2ull * SLOTS * ROUNDS;
  if (--l->generations_left > 0) {
    pthread_t t;
    int e = pthread_create(&t, NULL, worker, l);
    if (e)
      model_die("pthread_create: %s", strerror(e));
    pthread_detach(t);
  } else {
    pthread_mutex_lock(&done_lock);
    if (--lineages_left == 0)
      pthread_cond_signal(&done_cv);
    pthread_mutex_unlock(&done_lock);
  }
  return NULL;
}

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "larson", 256);
  size_t generations = model_scaled(10, a.scale);
  size_t nblocks = (size_t)SLOTS * a.threads;
  uint64_t rng = 4141, ops = 0;

  char **all = model_check(malloc(nblocks * sizeof *all), nblocks * sizeof *all);
  /* Warm-up, by main: fill, shuffle, replace 4 x nblocks at random. */
  for (size_t i = 0; i < nblocks; i++) {
    size_t n = block_size(&rng);
    all[i] = model_check(malloc(n), n);
    model_touch(all[i], n, 'w');
  }
  for (size_t i = nblocks; i > 1; i--) {
    size_t j = rng_below(&rng, i);
    char *t = all[j];
    all[j] = all[i - 1];
    all[i - 1] = t;
  }
  for (size_t i = 0; i < 4 * nblocks; i++) {
    size_t victim = rng_below(&rng, nblocks);
    free(all[victim]);
    size_t n = block_size(&rng);
    all[victim] = model_check(malloc(n), n);
    model_touch(all[victim], n, 'w');
  }

  /* Timed from the workers' start, as the original's clock starts. */
  double t0 = model_now();
  lineage *ls = model_check(calloc((size_t)a.threads, sizeof *ls), sizeof *ls);
  lineages_left = a.threads;
  for (int i = 0; i < a.threads; i++) {
    ls[i].blocks = all + (size_t)i * SLOTS;
    ls[i].rng = rng_next(&rng);
    ls[i].generations_left = generations;
    pthread_t t;
    int e = pthread_create(&t, NULL, worker, &ls[i]);
    if (e)
      model_die("pthread_create: %s", strerror(e));
    pthread_detach(t);
  }
  pthread_mutex_lock(&done_lock);
  while (lineages_left > 0)
    pthread_cond_wait(&done_cv, &done_lock);
  pthread_mutex_unlock(&done_lock);
  double t1 = model_now();

  for (int i = 0; i < a.threads; i++)
    ops += ls[i].ops;
  model_report(&a, t1 - t0, ops);
  /* As in the original, the last blocks are left to the process's exit. */
  return 0;
}
