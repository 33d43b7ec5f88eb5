/* Model of thread churn (issue 18): thousands of short-lived threads,
 * THREADS alive at a time, each of which allocates one block, swaps it
 * into a shared slot, frees the block it took out (another thread's, most
 * often one that has exited) and exits. What it costs is the allocator's
 * per-thread set-up and tear-down: a heap taken and given back, a first
 * refill, a free into a span whose owner is gone; glibc's malloc, whose
 * threads share arenas, is the reference.
 *
 * 20000 thread lifetimes per SCALE (rounded up to whole rounds of
 * THREADS); blocks of 16..2047 bytes.
 */
#include "model.h"

#define LIFETIMES 20000

static _Atomic(char *) slot;

typedef struct {
  size_t size;
} churn_arg;

static void *lifetime(void *arg)
{
  const churn_arg *c = arg;
  char *mine = model_check(malloc(c->size), c->size);
  model_touch(mine, c->size, 1);
  free(atomic_exchange(&slot, mine));
  return NULL;
}

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "thread-churn", 64);
  size_t lifetimes = model_scaled(LIFETIMES, a.scale);
  churn_arg args[64];
  uint64_t rng = 7;
  uint64_t done = 0;
  double t0 = model_now();
  for (; done < lifetimes; done += (uint64_t)a.threads) {
    for (int i = 0; i < a.threads; i++)
      args[i].size = 16 + (size_t)rng_below(&rng, 2032);
    model_run_threads(a.threads, lifetime, args, sizeof args[0]);
  }
  free(atomic_exchange(&slot, NULL));
  double t1 = model_now();
  model_report(&a, t1 - t0, done);
  return 0;
}
