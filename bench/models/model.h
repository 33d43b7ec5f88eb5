/* Shared bits of the model programs (bench/models/, one C file each): argument parsing,
 * timing, random numbers, the blocks' first/last-byte writes, threads and
 * the one JSON line each program prints at the end.
 *
 * Every model is `PROGRAM THREADS [SCALE]`: it does a fixed amount of work
 * (SCALE multiplies it; the default 1 takes roughly 0.3-1.5 s on a 2-core
 * machine at 2 threads under glibc), then prints
 *
 *   {"model": NAME, "threads": N, "scale": S, "seconds": T, "ops": K,
 *    "peak_rss_kib": R, "malloc_provider": PATH}
 *
 * seconds is CLOCK_MONOTONIC around the work (thread start-up included,
 * process start-up and exit not); ops counts the allocation calls (malloc,
 * calloc, realloc, memalign) and the frees the work made; peak_rss_kib is
 * the process's peak resident set (VmHWM) at the end: unlike getrusage's
 * or wait4's ru_maxrss it does not count what the parent had resident when
 * it forked the program (Linux keeps that across exec); malloc_provider is the
 * object whose malloc the program reaches, so that a runner can check that
 * the preloaded allocator served it. Errors go to stderr with exit status 1
 * (bad arguments: 2). See docs/benchmarks.md, "Models of the mimalloc-bench
 * programs". */
#ifndef STRATA_MODEL_H
#define STRATA_MODEL_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  const char *name;
  int threads;
  double scale;
} model_args;

static void model_die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void model_die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  exit(1);
}

/* PROGRAM THREADS [SCALE]; max_threads bounds THREADS. */
static model_args model_parse(int argc, char **argv, const char *name, int max_threads)
{
  model_args a = {name, 0, 1.0};
  char *end;
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s THREADS [SCALE]\n", argv[0]);
    exit(2);
  }
  errno = 0;
  long t = strtol(argv[1], &end, 10);
  if (errno || *end || t < 1 || t > max_threads) {
    fprintf(stderr, "%s: THREADS must be 1..%d, not '%s'\n", name, max_threads, argv[1]);
    exit(2);
  }
  a.threads = (int)t;
  if (argc == 3) {
    errno = 0;
    a.scale = strtod(argv[2], &end);
    if (errno || *end || !(a.scale > 0) || a.scale > 1e6) {
      fprintf(stderr, "%s: SCALE must be a number > 0, not '%s'\n", name, argv[2]);
      exit(2);
    }
  }
  return a;
}

/* n * scale rounded, at least 1: how much of a unit of work to do. */
static inline size_t model_scaled(size_t n, double scale)
{
  double v = (double)n * scale + 0.5;
  return v < 1 ? 1 : (size_t)v;
}

static inline double model_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* splitmix64: small, fast, good enough for picking sizes and slots. */
static inline uint64_t rng_next(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static inline uint64_t rng_below(uint64_t *s, uint64_t n)
{
  return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

/* Uniform in [0, 1). */
static inline double rng_unit(uint64_t *s)
{
  return (double)(rng_next(s) >> 11) * 0x1p-53;
}

/* Allocation failure is an error of the run, never ignored. */
static inline void *model_check(void *p, size_t size)
{
  if (!p)
    model_die("allocation of %zu bytes failed", size);
  return p;
}

/* Every block is written at least at its first and last byte. */
static inline void model_touch(void *p, size_t size, unsigned char v)
{
  unsigned char *b = (unsigned char *)p;
  b[0] = v;
  b[size - 1] = v;
}

/* Runs fn(arg + i * stride) in n threads and joins them. */
__attribute__((unused)) static void model_run_threads(int n, void *(*fn)(void *), void *arg, size_t stride)
{
  pthread_t *t = model_check(malloc(sizeof *t * (size_t)n), sizeof *t * (size_t)n);
  for (int i = 0; i < n; i++) {
    int e = pthread_create(&t[i], NULL, fn, (char *)arg + (size_t)i * stride);
    if (e)
      model_die("pthread_create: %s", strerror(e));
  }
  for (int i = 0; i < n; i++)
    pthread_join(t[i], NULL);
  free(t);
}

/* As model_run_threads, but one worker runs on the calling thread: the
 * models of single-threaded programs stay single-threaded at 1. */
__attribute__((unused)) static void model_run_workers(int n, void *(*fn)(void *), void *arg, size_t stride)
{
  if (n == 1)
    fn(arg);
  else
    model_run_threads(n, fn, arg, stride);
}

static const char *model_malloc_provider(void)
{
  Dl_info info;
  void *sym = dlsym(RTLD_DEFAULT, "malloc");
  return sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : "unknown";
}

/* The peak resident set of this process image (VmHWM), in KiB; 0 if
 * /proc cannot tell. */
static long model_peak_rss_kib(void)
{
  char line[256];
  long kib = 0;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

static void model_report(const model_args *a, double seconds, uint64_t ops)
{
  long peak = model_peak_rss_kib();
  printf("{\"model\": \"%s\", \"threads\": %d, \"scale\": %g, \"seconds\": %.6f, "
         "\"ops\": %llu, \"peak_rss_kib\": %ld, \"malloc_provider\": \"%s\"}\n",
         a->name, a->threads, a->scale, seconds, (unsigned long long)ops, peak,
         model_malloc_provider());
  fflush(stdout);
}

#endif
