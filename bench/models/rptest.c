/* Model of rptest (rpmalloc's benchmark, Mattias Jansson), as
 * mimalloc-bench runs it: `rptest N 0 1 2 500 1000 100 8 16000` (random
 * sizes with a linear drop-off over 8..16000 bytes, a cross-thread batch
 * every 2nd loop, 500 loops, 1000 slots per thread, ~100 operations a loop).
 *
 * Shape kept:
 * - rounds (2 in the original) that each start N threads and join them
 *   (threads restart); each thread does 2 iterations of 500 loops over its
 *   own 1000 slots;
 * - a loop frees 24..79 slots (stepping by a prime, 11), then frees every
 *   batch other threads handed it, then allocates 30..99 blocks into slots
 *   (stepping by 7; an occupied slot is freed first);
 * - every 2nd loop (with N > 1) it allocates one more batch of as many
 *   blocks, with its two bookkeeping records, and pushes it on the next
 *   thread's lock-free list: that thread frees them (cross-thread frees);
 *   once any thread has finished its loops no more batches are sent;
 * - sizes come from a table of 2000 sizes 8 + u3 * 15992 * |u1 + u2 - 1|
 *   (u uniform: most blocks small, few near 16000), walked in order from a
 *   per-thread offset;
 * - the original allocates through calloc, or memalign(8 or 16) + memset
 *   for two in three blocks under 4096 bytes, and writes every page; so
 *   does this model;
 * - at the end of an iteration the threads wait for each other, free what
 *   was handed to them and then all their slots.
 * Changed: fixed work as in the original, but without its sleeps (1 s
 * between phases), and 6 x SCALE rounds rather than 2, to fit the run in
 * half a second (longer loops instead would change the peak RSS: 500 loops
 * give the original's, 33 MB at 2 threads under glibc). */
#include "model.h"
#include <malloc.h>

#define SLOTS 1000
#define LOOPS 500
#define ROUNDS 6
#define OPS 100
#define MIN_SIZE 8
#define MAX_SIZE 16000
#define NSIZES 2000
#define ALLOC_STEP 7
#define FREE_STEP 11
#define CROSS_RATE 2

typedef struct batch {
  void **blocks;
  size_t count;
  struct batch *next;
} batch;

typedef struct {
  _Alignas(64) _Atomic(batch *) inbox;
  int index;
  uint64_t ops;
  char pad[64];
} thread_state;

static size_t sizes[NSIZES];
static size_t loops;
static int nthreads;
static thread_state *states;
static atomic_int loops_finished;
static pthread_barrier_t barrier;

static void *alloc_block(size_t size, size_t k)
{
  static const size_t alignment[3] = {0, 8, 16};
  size_t align = size < 4096 ? alignment[k % 3] : 0;
  char *p;
  if (align) {
    p = model_check(memalign(align, size), size);
    memset(p, 0xcd, size);
  } else {
    p = model_check(calloc(1, size), size);
  }
  for (size_t page = 4096; page < size; page += 4096)
    p[page] = 1;
  model_touch(p, size, 1);
  return p;
}

static void push(thread_state *to, batch *b)
{
  batch *head = atomic_load(&to->inbox);
  do
    b->next = head;
  while (!atomic_compare_exchange_weak(&to->inbox, &head, b));
}

static uint64_t free_inbox(thread_state *s)
{
  uint64_t ops = 0;
  batch *b = atomic_exchange(&s->inbox, NULL);
  while (b) {
    batch *next = b->next;
    for (size_t i = 0; i < b->count; i++)
      free(b->blocks[i]);
    ops += b->count + 2;
    free(b->blocks);
    free(b);
    b = next;
  }
  return ops;
}

static void *worker(void *arg)
{
  thread_state *s = arg;
  uint64_t rng = 0x5eed + (uint64_t)s->index * 7919, ops = 0;
  void **slots = model_check(memalign(16, SLOTS * sizeof *slots), SLOTS * sizeof *slots);
  memset(slots, 0, SLOTS * sizeof *slots);
  size_t alloc_idx = 0, free_idx = 0, cross = (size_t)s->index;

  for (int iter = 0; iter < 2; iter++) {
    size_t size_idx = (size_t)(s->index + 1) * (size_t)(iter + 1) * 37 % NSIZES;
    for (size_t loop = 0; loop < loops; loop++) {
      size_t nfree = (size_t)(0.8 * (double)(OPS * (30 + rng_below(&rng, 70)) / 100));
      size_t nalloc = OPS * (30 + rng_below(&rng, 70)) / 100;
      for (size_t i = 0; i < nfree; i++) {
        if (slots[free_idx]) {
          free(slots[free_idx]);
          slots[free_idx] = NULL;
          ops++;
        }
        free_idx = (free_idx + FREE_STEP) % SLOTS;
      }
      ops += free_inbox(s);
      for (size_t i = 0; i < nalloc; i++) {
        if (slots[alloc_idx]) {
          free(slots[alloc_idx]);
          ops++;
        }
        slots[alloc_idx] = alloc_block(sizes[(size_idx + 2) % NSIZES], size_idx + i);
        ops++;
        alloc_idx = (alloc_idx + ALLOC_STEP) % SLOTS;
        size_idx = (size_idx + 1) % NSIZES;
      }
      if (nthreads > 1 && loop % CROSS_RATE == 0 && atomic_load(&loops_finished) == 0) {
        batch *b = model_check(memalign(16, sizeof *b), sizeof *b);
        b->count = nalloc;
        b->blocks = model_check(memalign(16, nalloc * sizeof *b->blocks), nalloc * sizeof *b->blocks);
        for (size_t i = 0; i < nalloc; i++) {
          b->blocks[i] = alloc_block(sizes[(size_idx + 2) % NSIZES], size_idx + i);
          size_idx = (size_idx + 1) % NSIZES;
        }
        ops += nalloc + 2;
        cross = (cross + 1) % (size_t)nthreads;
        if (cross == (size_t)s->index)
          cross = (cross + 1) % (size_t)nthreads;
        push(&states[cross], b);
      }
    }
    atomic_fetch_add(&loops_finished, 1);
    /* Every thread has stopped sending: free what came, then the slots. */
    pthread_barrier_wait(&barrier);
    ops += free_inbox(s);
    for (size_t i = 0; i < SLOTS; i++) {
      if (slots[i]) {
        free(slots[i]);
        slots[i] = NULL;
        ops++;
      }
    }
    pthread_barrier_wait(&barrier);
    if (s->index == 0)
      atomic_store(&loops_finished, 0);
    pthread_barrier_wait(&barrier);
  }
  free(slots);
  s->ops += ops + 2;
  return NULL;
}

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "rptest", 256);
  nthreads = a.threads;
  loops = LOOPS;
  size_t rounds = model_scaled(ROUNDS, a.scale);
  uint64_t rng = 16000;
  for (size_t i = 0; i < NSIZES; i++) {
    double u1 = rng_unit(&rng), u2 = rng_unit(&rng), u3 = rng_unit(&rng);
    double w = u1 + u2 - 1;
    sizes[i] = MIN_SIZE + (size_t)(u3 * (MAX_SIZE - MIN_SIZE) * (w < 0 ? -w : w));
  }

  double t0 = model_now();
  states = model_check(aligned_alloc(64, sizeof *states * (size_t)nthreads),
                       sizeof *states * (size_t)nthreads);
  memset(states, 0, sizeof *states * (size_t)nthreads);
  for (size_t round = 0; round < rounds; round++) {
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) {
      states[i].index = i;
      atomic_store(&states[i].inbox, NULL);
    }
    model_run_threads(nthreads, worker, states, sizeof *states);
    pthread_barrier_destroy(&barrier);
  }
  double t1 = model_now();

  uint64_t ops = 0;
  for (int i = 0; i < nthreads; i++)
    ops += states[i].ops;
  free(states);
  model_report(&a, t1 - t0, ops);
  return 0;
}
