/* Model of cache-scratch (Hoard suite), as mimalloc-bench runs it:
 * `cache-scratch N 1000 1 2000000 N` (passive false sharing).
 *
 * Shape kept: main allocates the threads' argument records, then N objects
 * of 1 byte one after the other (so they likely share a cache line), and
 * gives one to each thread. Each thread first frees the object it was
 * given (a free of main's block), then 1000 times: malloc(1), write and
 * re-read its byte R/N times, free. An allocator that hands a thread the
 * block another thread freed, next to the blocks other threads write,
 * makes the threads' writes share a cache line: that is what the program
 * measures. The writes dominate the time, not the allocation calls.
 * Changed: R is 1000000 x SCALE rather than 2000000, to fit the run in a
 * second; it is divided among the threads as in the original, so the
 * total work does not grow with N. */
#include "model.h"

#define OBJ_SIZE 1
#define ITERATIONS 1000

typedef struct {
  char *given;
  size_t repetitions;
} worker_arg;

static void *worker(void *p)
{
  worker_arg w = *(worker_arg *)p;
  free(w.given);
  for (int i = 0; i < ITERATIONS; i++) {
    volatile char *obj = model_check(malloc(OBJ_SIZE), OBJ_SIZE);
    for (size_t j = 0; j < w.repetitions; j++) {
      for (size_t k = 0; k < OBJ_SIZE; k++) {
        obj[k] = (char)k;
        char c = obj[k];
        (void)c;
      }
    }
    model_touch((char *)obj, OBJ_SIZE, 1);
    free((char *)obj);
  }
  return NULL;
}

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "cache-scratch", 256);
  size_t repetitions = model_scaled(1000000, a.scale) / (size_t)a.threads;
  if (repetitions == 0)
    repetitions = 1;

  double t0 = model_now();
  worker_arg *w = model_check(malloc(sizeof *w * (size_t)a.threads), sizeof *w * (size_t)a.threads);
  char **objs = model_check(malloc(sizeof *objs * (size_t)a.threads), sizeof *objs * (size_t)a.threads);
  for (int i = 0; i < a.threads; i++) {
    objs[i] = model_check(malloc(OBJ_SIZE), OBJ_SIZE);
    model_touch(objs[i], OBJ_SIZE, 0);
  }
  for (int i = 0; i < a.threads; i++)
    w[i] = (worker_arg){objs[i], repetitions};
  model_run_threads(a.threads, worker, w, sizeof *w);
  double t1 = model_now();

  free(objs);
  free(w);
  model_report(&a, t1 - t0, 2ull * a.threads * (ITERATIONS + 1));
  return 0;
}
