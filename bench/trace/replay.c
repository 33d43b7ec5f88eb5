/* replay.c - strata-trace's reader: `info` describes a trace, `replay`
 * makes its calls again (format.h).
 *
 * Replay runs one thread per recorded thread, each making its thread's
 * calls in order with the recorded sizes and alignments, and writing a
 * byte in every page of each block it gets. A call on a block that another
 * thread allocates waits until that thread has made it (blocks[id], spin
 * then yield); the wait is always for a call that came earlier in the
 * recording, so it ends. The allocator is whichever malloc the program runs
 * with (LD_PRELOAD): the trace, the block table and the samples live in
 * mmap'd memory, so that the allocator under test serves the replayed calls
 * and little else.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "format.h"

struct rec {
  uint64_t time;   /* ns since the recording started */
  uint64_t size;
  uint32_t in, out;
  uint32_t align;
  uint8_t op;
};

struct thread {
  struct rec *recs;
  size_t n, cap;
};

static struct thread *threads;
static size_t nthreads, threads_cap;
static uint64_t max_id;

static void die(const char *fmt, const char *arg)
{
  fprintf(stderr, "strata-trace: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(1);
}

/* Grows an mmap'd array to at least `need` elements of `elem` bytes. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
  if (need <= *cap)
    return p;
  size_t n = *cap ? *cap * 2 : 1024;
  while (n < need)
    n *= 2;
  void *q = *cap ? mremap(p, *cap * elem, n * elem, MREMAP_MAYMOVE)
                 : mmap(NULL, n * elem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
  if (q == MAP_FAILED)
    die("out of memory for the trace%s", "");
  *cap = n;
  return q;
}

static void *map_zero(size_t bytes)
{
  void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    die("out of memory%s", "");
  return p;
}

static uint32_t id_of(uint64_t prev, uint64_t zz, const char *path)
{
  uint64_t id = prev + (uint64_t)trace_unzigzag(zz);
  if (id > UINT32_MAX)
    die("%s: a block id out of range", path);
  if (id > max_id)
    max_id = id;
  return (uint32_t)id;
}

static void load(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0)
    die("cannot open %s", path);
  size_t len = (size_t)st.st_size;
  if (len < TRACE_MAGIC_LEN + 1)
    die("%s: not a trace (too short)", path);
  const unsigned char *file = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (file == MAP_FAILED)
    die("cannot read %s", path);
  if (memcmp(file, TRACE_MAGIC, TRACE_MAGIC_LEN) != 0)
    die("%s: not a trace (no STRTRACE header)", path);
  if (file[TRACE_MAGIC_LEN] != TRACE_VERSION)
    die("%s: a trace of another version", path);
  const unsigned char *p = file + TRACE_MAGIC_LEN + 1, *end = file + len;
  while (p < end) {
    uint64_t t, clen;
    if (!trace_get_varint(&p, end, &t) || !trace_get_varint(&p, end, &clen) ||
        clen > (uint64_t)(end - p) || t > 1000000)
      die("%s: a damaged chunk header", path);
    threads = grow(threads, &threads_cap, t + 1, sizeof *threads);
    if (t >= nthreads)
      nthreads = t + 1;
    struct thread *th = &threads[t];
    const unsigned char *cend = p + clen;
    uint64_t now = 0, last_id = 0;
    while (p < cend) {
      th->recs = grow(th->recs, &th->cap, th->n + 1, sizeof *th->recs);
      struct rec *r = &th->recs[th->n++];
      uint64_t dt, v;
      r->op = *p++;
      if (r->op >= OP_COUNT || !trace_get_varint(&p, cend, &dt))
        die("%s: a damaged record", path);
      now += dt;
      r->time = now;
      unsigned fields = trace_op_fields[r->op];
      if (fields & F_IN) {
        if (!trace_get_varint(&p, cend, &v))
          die("%s: a damaged record", path);
        r->in = id_of(last_id, v, path);
        last_id = r->in;
      }
      if ((fields & F_SIZE) && !trace_get_varint(&p, cend, &r->size))
        die("%s: a damaged record", path);
      if (fields & F_ALIGN) {
        if (!trace_get_varint(&p, cend, &v))
          die("%s: a damaged record", path);
        r->align = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
      }
      if (fields & F_OUT) {
        if (!trace_get_varint(&p, cend, &v))
          die("%s: a damaged record", path);
        r->out = id_of(last_id, v, path);
        last_id = r->out;
      }
    }
  }
  munmap((void *)file, len);
  /* A block no record allocates (its allocation is lost: a process that
   * ended by _exit, or a damaged file) is treated as one allocated before
   * the recording, which replay would otherwise wait for forever. */
  unsigned char *made = map_zero(max_id + 1);
  for (size_t t = 0; t < nthreads; t++)
    for (size_t i = 0; i < threads[t].n; i++)
      made[threads[t].recs[i].out] = 1;
  for (size_t t = 0; t < nthreads; t++)
    for (size_t i = 0; i < threads[t].n; i++)
      if (!made[threads[t].recs[i].in])
        threads[t].recs[i].in = 0;
  munmap(made, max_id + 1);
}

static size_t total_ops(void)
{
  size_t n = 0;
  for (size_t t = 0; t < nthreads; t++)
    n += threads[t].n;
  return n;
}

/* ---- info ----------------------------------------------------------------------- */

static int by_time(const void *a, const void *b)
{
  const struct rec *x = *(const struct rec *const *)a, *y = *(const struct rec *const *)b;
  return (x->time > y->time) - (x->time < y->time);
}

/* The most bytes live at once (sizes asked for), over all threads in the
 * order of their timestamps. */
static uint64_t peak_live(void)
{
  size_t n = total_ops(), k = 0;
  struct rec **all = map_zero(n * sizeof *all);
  for (size_t t = 0; t < nthreads; t++)
    for (size_t i = 0; i < threads[t].n; i++)
      all[k++] = &threads[t].recs[i];
  qsort(all, n, sizeof *all, by_time);
  uint64_t *size = map_zero((max_id + 1) * sizeof *size);
  uint64_t live = 0, peak = 0;
  for (size_t i = 0; i < n; i++) {
    const struct rec *r = all[i];
    if (r->op == OP_USABLE_SIZE)
      continue;
    bool failed_resize = (trace_op_fields[r->op] & F_OUT) && !r->out && r->size;
    if (r->in && !failed_resize) {
      live -= size[r->in];
      size[r->in] = 0;
    }
    if (r->out) {
      size[r->out] = r->size;
      live += r->size;
    }
    if (live > peak)
      peak = live;
  }
  munmap(size, (max_id + 1) * sizeof *size);
  munmap(all, n * sizeof *all);
  return peak;
}

#define SIZE_BUCKETS 65

/* Bucket k holds sizes in (2^(k-1), 2^k]; bucket 0 holds 0 and 1. */
static unsigned size_bucket(uint64_t size)
{
  return size <= 1 ? 0 : 64 - (unsigned)__builtin_clzll(size - 1);
}

static int info(const char *path, bool json)
{
  load(path);
  uint64_t per_op[OP_COUNT] = {0}, hist[SIZE_BUCKETS] = {0};
  for (size_t t = 0; t < nthreads; t++)
    for (size_t i = 0; i < threads[t].n; i++) {
      const struct rec *r = &threads[t].recs[i];
      per_op[r->op]++;
      if (trace_op_fields[r->op] & F_OUT && r->out)
        hist[size_bucket(r->size)]++;
    }
  uint64_t peak = peak_live();
  size_t ops = total_ops();
  if (json) {
    printf("{\"ops\": %zu, \"threads\": %zu, \"peak_live_bytes\": %llu, \"per_op\": {", ops,
           nthreads, (unsigned long long)peak);
    for (int op = 0; op < OP_COUNT; op++)
      printf("%s\"%s\": %llu", op ? ", " : "", trace_op_names[op],
             (unsigned long long)per_op[op]);
    printf("}, \"per_thread\": [");
    for (size_t t = 0; t < nthreads; t++) {
      uint64_t mine[OP_COUNT] = {0};
      for (size_t i = 0; i < threads[t].n; i++)
        mine[threads[t].recs[i].op]++;
      printf("%s{", t ? ", " : "");
      for (int op = 0; op < OP_COUNT; op++)
        printf("%s\"%s\": %llu", op ? ", " : "", trace_op_names[op],
               (unsigned long long)mine[op]);
      printf("}");
    }
    printf("], \"sizes\": {");
    bool first = true;
    for (unsigned k = 0; k < SIZE_BUCKETS; k++)
      if (hist[k]) {
        printf("%s\"%llu\": %llu", first ? "" : ", ", 1ull << (k < 64 ? k : 63),
               (unsigned long long)hist[k]);
        first = false;
      }
    printf("}}\n");
    return 0;
  }
  printf("%s: %zu calls in %zu threads\n", path, ops, nthreads);
  for (int op = 0; op < OP_COUNT; op++)
    if (per_op[op])
      printf("  %-20s %12llu\n", trace_op_names[op], (unsigned long long)per_op[op]);
  printf("calls per thread:\n");
  for (size_t t = 0; t < nthreads; t++)
    printf("  thread %-6zu %12zu\n", t, threads[t].n);
  printf("sizes allocated (blocks up to the size):\n");
  for (unsigned k = 0; k < SIZE_BUCKETS; k++)
    if (hist[k])
      printf("  <= 2^%-2u %12llu\n", k, (unsigned long long)hist[k]);
  printf("peak of live bytes: %llu\n", (unsigned long long)peak);
  return 0;
}

/* ---- replay ----------------------------------------------------------------------- */

static _Atomic(void *) *blocks;  /* by block id: the replayed block, once made */
static pthread_barrier_t start_line;
static atomic_bool sampling_done;

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *wait_block(uint32_t id)
{
  void *p;
  for (unsigned spins = 0; !(p = atomic_load_explicit(&blocks[id], memory_order_acquire));
       spins++)
    if (spins >= 1000)
      sched_yield();
  return p;
}

/* The program writes what it allocates: here a byte in each page of the
 * block and its last byte, so that page faults count under every allocator
 * alike. */
static void made(const struct rec *r, void *p)
{
  if (!p) {
    fprintf(stderr, "strata-trace: replay: %s of %llu bytes failed\n", trace_op_names[r->op],
            (unsigned long long)r->size);
    exit(1);
  }
  for (uint64_t at = 0; at < r->size; at += 4096)
    ((volatile unsigned char *)p)[at] = 1;
  if (r->size)
    ((volatile unsigned char *)p)[r->size - 1] = 1;
  atomic_store_explicit(&blocks[r->out], p, memory_order_release);
}

static void *replay_thread(void *arg)
{
  const struct thread *th = arg;
  pthread_barrier_wait(&start_line);
  for (size_t i = 0; i < th->n; i++) {
    const struct rec *r = &th->recs[i];
    void *old = r->in ? wait_block(r->in) : NULL;
    void *p = NULL;
    if ((r->op == OP_REALLOC || r->op == OP_REALLOCARRAY) && old && r->size == 0) {
      /* realloc(p, 0) frees p under any allocator; the recording one
       * returned NULL or a block of its own, made again with malloc(0). */
      free(old);
      if (r->out)
        made(r, malloc(0));
      continue;
    }
    if ((trace_op_fields[r->op] & F_OUT) && !r->out)
      continue;  /* failed in the program */
    switch ((enum trace_op)r->op) {
    case OP_MALLOC: p = malloc(r->size); break;
    case OP_CALLOC: p = calloc(1, r->size); break;
    case OP_REALLOC:
    case OP_REALLOCARRAY:
      p = r->op == OP_REALLOC ? realloc(old, r->size) : reallocarray(old, 1, r->size);
      break;
    case OP_POSIX_MEMALIGN:
      if (posix_memalign(&p, r->align, r->size) != 0)
        p = NULL;
      break;
    case OP_ALIGNED_ALLOC: p = aligned_alloc(r->align, r->size); break;
    case OP_MEMALIGN: p = memalign(r->align, r->size); break;
    case OP_VALLOC: p = valloc(r->size); break;
    case OP_PVALLOC: p = pvalloc(r->size); break;
    case OP_FREE:
      free(old);  /* NULL for a block allocated before the recording */
      continue;
    case OP_USABLE_SIZE:
      if (old)
        malloc_usable_size(old);
      continue;
    case OP_COUNT: continue;
    }
    made(r, p);
  }
  return NULL;
}

struct samples {
  double (*at)[2];  /* seconds since the start, KiB resident */
  size_t n, cap;
  double start;
};

static long rss_kib(void)
{
  char buf[128];
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0)
    close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  long size, resident;
  if (sscanf(buf, "%ld %ld", &size, &resident) != 2)
    return -1;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void sample(struct samples *s)
{
  s->at = grow(s->at, &s->cap, s->n + 1, sizeof *s->at);
  s->at[s->n][0] = now_s() - s->start;
  s->at[s->n][1] = (double)rss_kib();
  s->n++;
}

static void *sampler(void *arg)
{
  struct samples *s = arg;
  const struct timespec tick = {0, 10 * 1000 * 1000};
  while (!atomic_load(&sampling_done)) {
    sample(s);
    nanosleep(&tick, NULL);
  }
  return NULL;
}

/* The object whose malloc the replayed calls reach (what LD_PRELOAD
 * chose), as the benchmark binaries report it: compare.py checks it is the
 * allocator under test. */
static const char *malloc_provider(void)
{
  Dl_info info;
  void *sym = dlsym(RTLD_DEFAULT, "malloc");
  return sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : "unknown";
}

/* The peak resident set since the last reset (VmHWM), in KiB. */
static long peak_rss_kib(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
      break;
  if (f)
    fclose(f);
  if (kib < 0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    kib = ru.ru_maxrss;
  }
  return kib;
}

static int replay(const char *path, bool json)
{
  load(path);
  size_t ops = total_ops();
  blocks = map_zero((max_id + 1) * sizeof *blocks);
  pthread_t *tids = map_zero(nthreads * sizeof *tids);
  if (pthread_barrier_init(&start_line, NULL, (unsigned)nthreads + 1) != 0)
    die("cannot start %s threads", "the replay");
  for (size_t t = 0; t < nthreads; t++)
    if (pthread_create(&tids[t], NULL, replay_thread, &threads[t]) != 0)
      die("cannot start %s threads", "the replay");
  /* The peak counts from here: the trace is loaded, the threads wait. */
  int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (write(fd, "5", 1) != 1) {
      /* an older kernel: the peak includes the loading */
    }
    close(fd);
  }
  long base_kib = rss_kib();
  struct samples s = {.start = now_s()};
  pthread_t sampler_tid;
  if (pthread_create(&sampler_tid, NULL, sampler, &s) != 0)
    die("cannot start %s thread", "the sampling");
  double t0 = now_s();
  pthread_barrier_wait(&start_line);
  for (size_t t = 0; t < nthreads; t++)
    pthread_join(tids[t], NULL);
  double seconds = now_s() - t0;
  atomic_store(&sampling_done, true);
  pthread_join(sampler_tid, NULL);
  sample(&s);
  long peak = peak_rss_kib();
  double rate = seconds > 0 ? (double)ops / seconds : 0;
  /* The JSON counts what the replayed calls added to the RSS: the loaded
   * trace is the same under every allocator and would blur the ratios. */
  if (json) {
    printf("{\"ops\": %zu, \"seconds\": %.6f, \"ops_per_s\": %.1f, \"peak_rss_kib\": %ld, "
           "\"base_rss_kib\": %ld, \"rss_kib\": [", ops, seconds, rate,
           peak > base_kib ? peak - base_kib : 0, base_kib);
    for (size_t i = 0; i < s.n; i++)
      printf("%s[%.3f, %.0f]", i ? ", " : "", s.at[i][0],
             s.at[i][1] > base_kib ? s.at[i][1] - base_kib : 0);
    printf("], \"threads\": %zu, \"malloc_provider\": \"%s\"}\n", nthreads, malloc_provider());
    return 0;
  }
  double max_rss = 0;
  for (size_t i = 0; i < s.n; i++)
    if (s.at[i][1] > max_rss)
      max_rss = s.at[i][1];
  printf("%s: %zu calls in %zu threads\n", path, ops, nthreads);
  printf("  time           %.3f s\n", seconds);
  printf("  calls per s    %.0f\n", rate);
  printf("  peak RSS       %ld KiB (the loaded trace: %ld KiB at the start)\n", peak, base_kib);
  printf("  RSS sampled    %zu times every 10 ms, at most %.0f KiB, at the end %.0f KiB\n",
         s.n, max_rss, s.at[s.n - 1][1]);
  return 0;
}

int main(int argc, char **argv)
{
  /* --json may come before or after FILE. */
  bool json = argc == 4 && (strcmp(argv[2], "--json") == 0 || strcmp(argv[3], "--json") == 0);
  const char *file = argc == 4 && strcmp(argv[3], "--json") == 0 ? argv[2] : argv[argc - 1];
  if (argc == 3 + json && strcmp(argv[1], "info") == 0)
    return info(file, json);
  if (argc == 3 + json && strcmp(argv[1], "replay") == 0)
    return replay(file, json);
  fprintf(stderr, "usage: %s info|replay [--json] FILE\n", argv[0]);
  return 2;
}
