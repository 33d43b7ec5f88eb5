/* trace_prog.c - the program tests/trace records (bench/trace/test_trace.py).
 *
 *   trace_prog work   4 threads; each makes the calls below and hands half
 *                     of its blocks to the next thread, which frees them
 *   trace_prog idle   the same 4 threads, which make no call: what the C
 *                     library allocates for itself, to subtract
 *   trace_prog fork   work, after two children: one allocates blocks of
 *                     FORK_SIZE bytes and exits (not recorded), one executes
 *                     `trace_prog idle` (recorded into FILE.<pid>)
 *   trace_prog exec   work, then executes `trace_prog idle` without a fork
 *                     (its own records are written before; the new image's
 *                     go to FILE.<pid>)
 *
 * It prints on stdout what one worker calls, as JSON ("expect {...}"), with
 * a checksum of the blocks' contents.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKERS 4
#define BLOCKS 100
#define FORK_SIZE 777777

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_FREE, C_POSIX_MEMALIGN, C_ALIGNED_ALLOC, C_MEMALIGN,
       C_VALLOC, C_PVALLOC, C_REALLOCARRAY, C_USABLE_SIZE, C_COUNT };
static const char *const names[C_COUNT] = {
  "malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc", "memalign",
  "valloc", "pvalloc", "reallocarray", "malloc_usable_size"};

static unsigned calls[WORKERS][C_COUNT];
static void *handed[WORKERS][BLOCKS / 2];
static unsigned long sums[WORKERS];
static pthread_barrier_t handover;
static int working;

static void *fill(void *p, size_t n, int w)
{
  if (!p) {
    fprintf(stderr, "trace_prog: out of memory\n");
    exit(1);
  }
  memset(p, 'a' + w, n);
  return p;
}

static void *worker(void *arg)
{
  int w = (int)(long)arg;
  unsigned *c = calls[w];
  if (!working)
    return NULL;
  void *mine[BLOCKS];
  for (int i = 0; i < BLOCKS; i++) {
    size_t n = 16 * (size_t)(i + 1) + (size_t)w;
    mine[i] = fill(malloc(n), n, w), c[C_MALLOC]++;
    sums[w] += n;
  }
  for (int i = 0; i < BLOCKS / 2; i++) {
    handed[(w + 1) % WORKERS][i] = mine[2 * i];
    free(mine[2 * i + 1]), c[C_FREE]++;
  }
  /* A realloc chain, from realloc(NULL, n) to realloc(p, 0). */
  char *p = fill(realloc(NULL, 8), 8, w);
  c[C_REALLOC]++;
  for (size_t n = 100; n <= 10000; n *= 10)
    p = fill(realloc(p, n), n, w), c[C_REALLOC]++;
  p = realloc(p, 0), c[C_REALLOC]++;
  if (p)  /* an allocator that returns a block for size 0 */
    free(p), c[C_FREE]++;
  void *q = calloc(10, 10);
  c[C_CALLOC]++;
  sums[w] += ((unsigned char *)q)[99];
  free(q), c[C_FREE]++;
  if (posix_memalign(&q, 64, 200) == 0)
    free(fill(q, 200, w)), c[C_FREE]++;
  c[C_POSIX_MEMALIGN]++;
  free(fill(aligned_alloc(128, 256), 256, w)), c[C_ALIGNED_ALLOC]++, c[C_FREE]++;
  free(fill(memalign(256, 100), 100, w)), c[C_MEMALIGN]++, c[C_FREE]++;
  free(fill(valloc(5000), 5000, w)), c[C_VALLOC]++, c[C_FREE]++;
  free(fill(pvalloc(100), 100, w)), c[C_PVALLOC]++, c[C_FREE]++;
  q = fill(reallocarray(NULL, 10, 30), 300, w), c[C_REALLOCARRAY]++;
  q = fill(reallocarray(q, 20, 30), 600, w), c[C_REALLOCARRAY]++;
  sums[w] += malloc_usable_size(q) >= 600, c[C_USABLE_SIZE]++;
  free(q), c[C_FREE]++;
  pthread_barrier_wait(&handover);
  for (int i = 0; i < BLOCKS / 2; i++) {
    sums[w] += ((unsigned char *)handed[w][i])[0];
    free(handed[w][i]), c[C_FREE]++;
  }
  return NULL;
}

/* A child that allocates and exits: fork stops its recording. */
static void fork_allocating(void)
{
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < 100; i++)
      free(fill(malloc(FORK_SIZE), FORK_SIZE, 0));
    exit(0);
  }
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0) {
    fprintf(stderr, "trace_prog: the allocating child failed\n");
    exit(1);
  }
}

static void fork_exec(const char *self)
{
  pid_t pid = fork();
  if (pid == 0) {
    execl(self, self, "idle", (char *)NULL);
    _exit(127);
  }
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0) {
    fprintf(stderr, "trace_prog: the executed child failed\n");
    exit(1);
  }
}

int main(int argc, char **argv)
{
  const char *mode = argc == 2 ? argv[1] : "";
  working = strcmp(mode, "work") == 0 || strcmp(mode, "fork") == 0 || strcmp(mode, "exec") == 0;
  if (!working && strcmp(mode, "idle") != 0) {
    fprintf(stderr, "usage: trace_prog work|idle|fork|exec\n");
    return 2;
  }
  if (strcmp(mode, "fork") == 0) {
    fork_allocating();
    fork_exec(argv[0]);
  }
  pthread_barrier_init(&handover, NULL, WORKERS);
  pthread_t tids[WORKERS];
  for (long w = 0; w < WORKERS; w++)
    if (pthread_create(&tids[w], NULL, worker, (void *)w) != 0)
      return 1;
  unsigned long sum = 0;
  for (int w = 0; w < WORKERS; w++) {
    pthread_join(tids[w], NULL);
    sum += sums[w];
    if (memcmp(calls[w], calls[0], sizeof calls[0]) != 0) {
      fprintf(stderr, "trace_prog: the workers differ\n");
      return 1;
    }
  }
  printf("expect {\"workers\": %d, \"per_worker\": {", working ? WORKERS : 0);
  for (int k = 0; k < C_COUNT; k++)
    printf("%s\"%s\": %u", k ? ", " : "", names[k], calls[0][k]);
  printf("}, \"sum\": %lu}\n", sum);
  if (strcmp(mode, "exec") == 0) {
    fflush(stdout);
    execl(argv[0], argv[0], "idle", (char *)NULL);
    return 127;
  }
  return 0;
}
