/* Model of mimalloc-bench's malloc-large (by Danila Kutenin): 20 buffers;
 * 5000 times, a random one is replaced by a new zeroed block
 * (std::make_unique<char[]>(n)) of n uniform in 5..25 MiB.
 *
 * Shape kept: one thread, 20 live blocks of 5..25 MiB, each replacement
 * frees the old block only after the new one is allocated and zeroed in
 * full (make_unique allocates, fills, then the assignment frees the old
 * one), so up to 21 blocks are live at once. What it measures: how an
 * allocator reuses, keeps or returns huge blocks that differ in size (page
 * faults on fresh memory against resident memory kept).
 * Changed: 300 x SCALE replacements rather than 5000, to fit in a second.
 * The original is single-threaded; with THREADS > 1 the 20 buffers and the
 * replacements are shared out among the threads (each with its own
 * buffers), so the live memory stays that of the original. compare.py
 * runs it at 1 thread only. */
#include "model.h"

#define BUFFERS 20
#define MIN_SIZE ((size_t)5 << 20)
#define MAX_SIZE ((size_t)25 << 20)
#define REPLACEMENTS 300

typedef struct {
  int nbuffers;
  size_t replacements;
  uint64_t rng;
  uint64_t ops;
  char *buf[BUFFERS];
} thread_arg;

static void *worker(void *arg)
{
  thread_arg *ta = arg;
  for (size_t i = 0; i < ta->replacements; i++) {
    int idx = (int)rng_below(&ta->rng, (uint64_t)ta->nbuffers);
    size_t n = MIN_SIZE + rng_below(&ta->rng, MAX_SIZE - MIN_SIZE + 1);
    char *p = model_check(malloc(n), n);
    memset(p, 0, n);
    ta->ops += ta->buf[idx] ? 2 : 1;
    free(ta->buf[idx]);
    ta->buf[idx] = p;
  }
  for (int i = 0; i < ta->nbuffers; i++) {
    ta->ops += ta->buf[i] != NULL;
    free(ta->buf[i]);
    ta->buf[i] = NULL;
  }
  return NULL;
}

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "malloc-large", BUFFERS);
  size_t replacements = model_scaled(REPLACEMENTS, a.scale);

  double t0 = model_now();
  thread_arg *ta = model_check(calloc((size_t)a.threads, sizeof *ta), sizeof *ta * (size_t)a.threads);
  for (int i = 0; i < a.threads; i++) {
    ta[i].nbuffers = BUFFERS / a.threads + (i < BUFFERS % a.threads);
    ta[i].replacements = replacements / (size_t)a.threads + ((size_t)i < replacements % (size_t)a.threads);
    ta[i].rng = 42 + (uint64_t)i;
  }
  model_run_workers(a.threads, worker, ta, sizeof *ta);
  double t1 = model_now();

  uint64_t ops = 0;
  for (int i = 0; i < a.threads; i++)
    ops += ta[i].ops;
  free(ta);
  model_report(&a, t1 - t0, ops);
  return 0;
}
