/* Model of xmalloc-test (Lever and Boreham's malloc test, as in
 * mimalloc-bench: `xmalloc-test -w N -t 5 -s 64`).
 *
 * Shape kept: N producer threads and N consumer threads (THREADS = N, as
 * -w N: 2N threads in all). A producer allocates a batch record and 4096
 * blocks of 64 bytes, writes each block, and pushes the batch on one shared
 * stack (a mutex and two condition variables; at most 100 batches wait,
 * producers block when it is full); a consumer pops a batch (the most
 * recent: it is a stack) and frees its 4096 blocks and the record. Every
 * free is remote: the blocks always die in another thread than the one
 * that made them.
 * Changed: the original runs for 5 s and counts frees; here each producer
 * makes 750 x SCALE batches and the consumers stop when all are freed
 * (fixed work). */
#include "model.h"

#define OBJECTS_PER_BATCH 4096
#define OBJECT_SIZE 64
#define QUEUE_LIMIT 100
#define BATCHES 750

typedef struct batch {
  struct batch *next;
  void *objects[OBJECTS_PER_BATCH];
} batch;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t empty_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t full_cv = PTHREAD_COND_INITIALIZER;
static batch *stack;
static int queued;
static size_t batches_per_producer, batches_left;  /* left to consume */

static void *producer(void *arg)
{
  (void)arg;
  for (size_t k = 0; k < batches_per_producer; k++) {
    batch *b = model_check(malloc(sizeof *b), sizeof *b);
    for (int i = 0; i < OBJECTS_PER_BATCH; i++) {
      b->objects[i] = model_check(malloc(OBJECT_SIZE), OBJECT_SIZE);
      memset(b->objects[i], i % 256, OBJECT_SIZE);
    }
    pthread_mutex_lock(&lock);
    while (queued >= QUEUE_LIMIT)
      pthread_cond_wait(&full_cv, &lock);
    b->next = stack;
    stack = b;
    queued++;
    pthread_cond_signal(&empty_cv);
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

static void *consumer(void *arg)
{
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&lock);
    while (!stack && batches_left > 0)
      pthread_cond_wait(&empty_cv, &lock);
    if (!stack) {   /* all consumed */
      pthread_mutex_unlock(&lock);
      return NULL;
    }
    batch *b = stack;
    stack = b->next;
    queued--;
    if (--batches_left == 0)
      pthread_cond_broadcast(&empty_cv);
    pthread_cond_signal(&full_cv);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < OBJECTS_PER_BATCH; i++)
      free(b->objects[i]);
    free(b);
  }
}

static void *role(void *arg)
{
  return (*(int *)arg & 1) ? producer(arg) : consumer(arg);
}

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "xmalloc-test", 128);
  batches_per_producer = model_scaled(BATCHES, a.scale);
  batches_left = batches_per_producer * (size_t)a.threads;
  uint64_t ops = 2ull * batches_left * (OBJECTS_PER_BATCH + 1);

  double t0 = model_now();
  /* Threads 2i (consumers) and 2i + 1 (producers), started in that order
   * as the original does. */
  int *ids = model_check(malloc(sizeof *ids * 2 * (size_t)a.threads), sizeof *ids * 2);
  for (int i = 0; i < 2 * a.threads; i++)
    ids[i] = i;
  model_run_threads(2 * a.threads, role, ids, sizeof *ids);
  double t1 = model_now();

  free(ids);
  model_report(&a, t1 - t0, ops);
  return 0;
}
