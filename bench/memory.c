/* memory.c - memory benchmarks for the "lean memory" issue.
 *
 * A standalone program: it links no allocator and calls plain malloc/free,
 * so the allocator under test is whatever LD_PRELOAD puts first (glibc's
 * own malloc when nothing is preloaded).  bench/memory.sh builds it, runs it
 * under every allocator and prints the tables.
 *
 *   memory burst       [threads]          1 GiB of small blocks over N threads
 *                                         (default 4), freed; the threads then
 *                                         stay alive and idle; RSS is sampled
 *                                         0..2000 ms after the frees
 *   memory burst-exit  [threads]          the same, but the threads exit after
 *                                         freeing
 *   memory frag                           fragmentation: fill ~512 MiB, free a
 *                                         random 90 %, refill with other sizes;
 *                                         3 rounds; peak RSS / peak live bytes
 *   memory steady      [threads] [secs]   throughput of a sliding window of
 *                                         alloc/free per thread (default 4
 *                                         threads, 3 s): the cost of giving
 *                                         memory back (decay) in steady state
 *
 * Each mode prints one line of key=value pairs (bytes, ops/s, ratios) on
 * stdout, for the script to parse, e.g.
 *   burst peak_rss=... hwm=... rss_0ms=... ... frac_1s=0.0123
 *
 * Build: gcc -O2 -fno-builtin -pthread bench/memory.c -o memory
 * (-fno-builtin: every malloc/free must really reach the allocator.)
 *
 * Rules the code keeps so that the numbers measure the allocator alone:
 *   - memory is measured from /proc/self/status (VmRSS, VmHWM), read with
 *     open/read into a stack buffer: no stdio, so no allocation;
 *   - the bookkeeping of the benchmark itself (pointer arrays) lives in
 *     mmap'd memory, never in the allocator under test; in `burst` there is
 *     none at all: the blocks of a thread are chained through their first
 *     word;
 *   - in `burst`, after the frees, the main thread makes no allocator call
 *     until every sample is taken (printf comes last);
 *   - every allocated byte is written, so RSS reflects what is allocated.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)

/* ------------------------------------------------------------- helpers */

static void die(const char *what) {
  fprintf(stderr, "memory: %s\n", what);
  exit(1);
}

/* splitmix64: a small, fast, seedable generator (one per thread). */
typedef struct { uint64_t s; } rng_t;

static uint64_t rng_next(rng_t *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform integer in [lo, hi]. */
static size_t rng_uniform(rng_t *r, size_t lo, size_t hi) {
  return lo + (size_t)(rng_next(r) % (hi - lo + 1));
}

/* Roughly log-uniform integer in [lo, hi] (as many blocks per doubling of
 * size): pick at random one of the doublings [lo*2^d, lo*2^(d+1)) that
 * start below hi, then a uniform size inside it; the last one ends at hi
 * (so 16..1024 is 16..31, 32..63, ..., 512..1024, each 1/6 of the blocks). */
static size_t rng_log_uniform(rng_t *r, size_t lo, size_t hi) {
  unsigned buckets = 1;
  while ((lo << buckets) < hi) buckets++;
  unsigned d = (unsigned)(rng_next(r) % buckets);
  size_t b_lo = lo << d, b_hi = d + 1 == buckets ? hi : (lo << (d + 1)) - 1;
  return rng_uniform(r, b_lo, b_hi);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep until `deadline_ns` on the CLOCK_MONOTONIC scale. */
static void sleep_until_ns(uint64_t deadline_ns) {
  struct timespec ts = {(time_t)(deadline_ns / 1000000000ull),
                        (long)(deadline_ns % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

/* A field of /proc/self/status ("VmRSS", "VmHWM"), in bytes; 0 if absent.
 * Makes no allocation: open/read into a stack buffer. */
static size_t status_field(const char *name) {
  char buf[4096];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  size_t len = strlen(name);
  for (char *line = buf;;) {
    if (strncmp(line, name, len) == 0 && line[len] == ':') {
      /* "VmRSS:\t  123456 kB" */
      size_t kb = 0;
      for (char *c = line + len + 1; *c && *c != '\n'; c++)
        if (*c >= '0' && *c <= '9') kb = kb * 10 + (size_t)(*c - '0');
      return kb * KiB;
    }
    char *nl = strchr(line, '\n');
    if (!nl) return 0;
    line = nl + 1;
  }
}

static size_t rss_bytes(void) { return status_field("VmRSS"); }
static size_t hwm_bytes(void) { return status_field("VmHWM"); }

/* Reset VmHWM to the current RSS (echo 5 > /proc/self/clear_refs). */
static int reset_hwm(void) {
  int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  int ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

/* Anonymous memory for the benchmark's own bookkeeping, outside the
 * allocator under test. */
static void *map_pages(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap failed");
  return p;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) die("malloc returned NULL");
  return p;
}

/* Write one byte per page of a block, and its last byte (the pages become
 * resident, as they would in a program that uses them). */
static void touch_pages(char *p, size_t n) {
  for (size_t i = 0; i < n; i += 4096) p[i] = (char)i;
  p[n - 1] = 1;
}

/* ------------------------------------------------------------- burst
 *
 * Each of N threads allocates 1 GiB / N of blocks of uniform random size
 * 16..1024 B (sum of the requested sizes), writes them in full and chains
 * them through their first word (no bookkeeping memory).  When all threads
 * are done, the main thread samples the peak RSS; then the threads free their
 * blocks, in allocation order, and either block on a barrier until the end
 * (`burst`: alive but idle, no further allocator call) or exit
 * (`burst-exit`).  The main thread then samples VmRSS at fixed delays after
 * the last free, without calling the allocator.
 */

#define BURST_TOTAL GiB
static const unsigned burst_delays_ms[] = {0, 250, 500, 1000, 2000};
#define N_DELAYS (sizeof burst_delays_ms / sizeof burst_delays_ms[0])

typedef struct {
  pthread_barrier_t bar;  /* main + all workers */
  size_t per_thread;      /* bytes requested per thread */
  int exit_after_free;    /* burst-exit: workers return after freeing */
} burst_shared_t;

typedef struct {
  burst_shared_t *sh;
  unsigned id;
} burst_arg_t;

static void *burst_worker(void *argp) {
  burst_arg_t *arg = argp;
  burst_shared_t *sh = arg->sh;
  rng_t rng = {12345 + arg->id};

  /* Allocate: a FIFO chain through the first word of every block. */
  void *head = NULL, **tail = &head;
  for (size_t bytes = 0; bytes < sh->per_thread;) {
    size_t s = rng_uniform(&rng, 16, 1024);
    char *p = xmalloc(s);
    memset(p, 0x5a, s);
    *(void **)p = NULL;
    *tail = p;
    tail = (void **)p;
    bytes += s;
  }

  pthread_barrier_wait(&sh->bar); /* 1: all allocated; main samples the peak */
  pthread_barrier_wait(&sh->bar); /* 2: go free */

  for (void *p = head; p;) {
    void *next = *(void **)p;
    free(p);
    p = next;
  }

  if (sh->exit_after_free) return NULL; /* burst-exit: main joins us */
  pthread_barrier_wait(&sh->bar);       /* 3: all freed; main samples */
  pthread_barrier_wait(&sh->bar);       /* 4: idle until main has printed */
  return NULL;
}

static int run_burst(int exit_after_free, unsigned nthreads) {
  if (nthreads < 1 || nthreads > 64) die("burst: threads must be 1..64");
  burst_shared_t sh = {.per_thread = BURST_TOTAL / nthreads,
                       .exit_after_free = exit_after_free};
  pthread_barrier_init(&sh.bar, NULL, nthreads + 1);
  pthread_t tid[64];
  burst_arg_t args[64];
  size_t base = rss_bytes();

  for (unsigned i = 0; i < nthreads; i++) {
    args[i] = (burst_arg_t){&sh, i};
    if (pthread_create(&tid[i], NULL, burst_worker, &args[i]) != 0) die("pthread_create");
  }

  pthread_barrier_wait(&sh.bar); /* 1: everything allocated */
  size_t peak = rss_bytes();
  size_t hwm = hwm_bytes();
  pthread_barrier_wait(&sh.bar); /* 2: workers free */

  if (exit_after_free) {
    for (unsigned i = 0; i < nthreads; i++) pthread_join(tid[i], NULL);
  } else {
    pthread_barrier_wait(&sh.bar); /* 3: every block freed */
  }

  /* From here until the printf: no allocator call in this thread, and the
   * workers are blocked (or gone). */
  uint64_t t0 = now_ns();
  size_t rss[N_DELAYS];
  for (size_t i = 0; i < N_DELAYS; i++) {
    sleep_until_ns(t0 + (uint64_t)burst_delays_ms[i] * 1000000ull);
    rss[i] = rss_bytes();
  }

  printf("%s threads=%u base_rss=%zu peak_rss=%zu hwm=%zu", exit_after_free ? "burst-exit" : "burst",
         nthreads, base, peak, hwm);
  for (size_t i = 0; i < N_DELAYS; i++) printf(" rss_%ums=%zu", burst_delays_ms[i], rss[i]);
  printf(" frac_1s=%.4f\n", peak ? (double)rss[3] / (double)peak : 0.0);
  fflush(stdout);

  if (!exit_after_free) {
    pthread_barrier_wait(&sh.bar); /* 4: release the idle workers */
    for (unsigned i = 0; i < nthreads; i++) pthread_join(tid[i], NULL);
  }
  pthread_barrier_destroy(&sh.bar);
  return 0;
}

/* ------------------------------------------------------------- frag
 *
 * Single thread.  Fill: allocate blocks until FRAG_LIVE bytes (requested
 * sizes) are live, drawn from a size band: mostly small blocks of the band,
 * plus 1 in 1024 medium blocks of 8..256 KiB (a third of the bytes with the
 * 16..512 band, a twentieth with 600..2000).
 * Then 3 rounds of: free a random 90 % of the live blocks, and allocate
 * blocks of the next band until the live bytes are back to their first peak.
 * The small bands are disjoint, so freed memory can only be reused by an
 * allocator that can repurpose it for other size classes:
 *     fill: 16..512 B,  round 1: 600..2000 B,  round 2: 2100..4096 B,
 *     round 3: 16..512 B again.
 * Live bytes are tracked exactly; peak RSS is VmHWM less the RSS before the
 * first allocation (the pointer array is mapped and touched before that).
 * Also printed: the RSS after the last 90 % free (memory given back), and at
 * the end (all less that baseline).
 * Each block stores its requested size in its first word.
 */

#define FRAG_LIVE ((size_t)512 * MiB)
#define FRAG_CAP ((size_t)4 << 20) /* pointer slots: more than ever needed */
#define FRAG_ROUNDS 3

static const size_t frag_band[][2] = {{16, 512}, {600, 2000}, {2100, 4096}};

static size_t frag_size(rng_t *r, unsigned band) {
  if (rng_next(r) % 1024 == 0) return rng_log_uniform(r, 8 * KiB, 256 * KiB);
  return rng_log_uniform(r, frag_band[band][0], frag_band[band][1]);
}

/* The live blocks of the frag workload (the pointer array is mmap'd). */
typedef struct {
  void **blk;        /* live blocks; each holds its size in its first word */
  size_t n;          /* how many */
  size_t live;       /* sum of their requested sizes */
  size_t peak_live;  /* the largest `live` seen */
  size_t max_blocks; /* the largest `n` seen */
  rng_t rng;
} frag_t;

/* Allocate blocks from `band` (each written in full) until `target` bytes
 * are live. */
static void frag_fill(frag_t *f, unsigned band, size_t target) {
  while (f->live < target) {
    if (f->n == FRAG_CAP) die("frag: too many blocks");
    size_t s = frag_size(&f->rng, band);
    char *p = xmalloc(s);
    memset(p, 0x33, s);
    *(size_t *)p = s;
    f->blk[f->n++] = p;
    f->live += s;
  }
  if (f->live > f->peak_live) f->peak_live = f->live;
  if (f->n > f->max_blocks) f->max_blocks = f->n;
}

/* Free a random 90 % of the live blocks (each with probability 0.9),
 * compacting the survivors to the front of the array. */
static void frag_free_90(frag_t *f) {
  size_t kept = 0;
  for (size_t i = 0; i < f->n; i++) {
    if (rng_next(&f->rng) % 10 != 0) {
      f->live -= *(size_t *)f->blk[i];
      free(f->blk[i]);
    } else {
      f->blk[kept++] = f->blk[i];
    }
  }
  f->n = kept;
}

static int run_frag(void) {
  frag_t f = {.blk = map_pages(FRAG_CAP * sizeof(void *)), .rng = {2024}};
  memset(f.blk, 0, FRAG_CAP * sizeof(void *)); /* resident before the baseline */

  /* VmHWM is a maximum since the process started; resetting it is hygiene
   * (the baseline, taken after the pointer array is resident, is already
   * above anything before it), so a refused reset changes nothing. */
  reset_hwm();
  size_t base = rss_bytes();
  uint64_t t_start = now_ns();

  frag_fill(&f, 0, FRAG_LIVE);
  size_t target = f.live; /* the first peak: each refill comes back to it */
  size_t rss_after_free = 0;
  for (unsigned round = 1; round <= FRAG_ROUNDS; round++) {
    frag_free_90(&f);
    rss_after_free = rss_bytes();
    frag_fill(&f, round % 3, target);
  }

  double secs = (double)(now_ns() - t_start) / 1e9;
  size_t peak = hwm_bytes() - base;
  size_t final_rss = rss_bytes() - base;
  printf("frag base_rss=%zu peak_live=%zu peak_rss=%zu ratio=%.4f final_live=%zu final_rss=%zu "
         "rss_after_last_free=%zu max_blocks=%zu secs=%.2f\n",
         base, f.peak_live, peak, (double)peak / (double)f.peak_live, f.live, final_rss,
         rss_after_free - base, f.max_blocks, secs);
  fflush(stdout);

  for (size_t i = 0; i < f.n; i++) free(f.blk[i]);
  munmap(f.blk, FRAG_CAP * sizeof(void *));
  return 0;
}

/* ------------------------------------------------------------- steady
 *
 * Each thread keeps a window of STEADY_WINDOW live blocks and, in a loop,
 * replaces a random one (free + malloc of a new random size), writing one
 * byte per page of the new block.  Sizes: 90 % log-uniform 16..1024 B,
 * 9 % 1..32 KiB, 1 % 32..256 KiB (about 4.5 MiB live per thread).  The
 * window is filled first; then the threads run for `secs` seconds.
 * Item (op): one free + malloc pair.  Prints
 *   ops_per_s      ops per second of wall time (throughput);
 *   ops_per_cpu_s  ops per second of CPU time of the whole process, the
 *                  allocator's own threads (a purge thread) included: the
 *                  cost per op, much less sensitive than ops_per_s to other
 *                  programs competing for the cores.
 */

#define STEADY_WINDOW 2048

typedef struct {
  pthread_barrier_t start; /* main + workers: every window is full */
  _Atomic int stop;        /* set by main after `secs` */
} steady_shared_t;

typedef struct {
  steady_shared_t *sh;
  unsigned id;
  uint64_t ops;
  char pad[64]; /* keep the counters of different threads apart */
} steady_arg_t;

static size_t steady_size(rng_t *r) {
  uint64_t x = rng_next(r) % 100;
  if (x < 90) return rng_log_uniform(r, 16, 1024);
  if (x < 99) return rng_log_uniform(r, 1024, 32 * KiB);
  return rng_log_uniform(r, 32 * KiB, 256 * KiB);
}

static void *steady_worker(void *argp) {
  steady_arg_t *arg = argp;
  steady_shared_t *sh = arg->sh;
  rng_t rng = {777 + arg->id};
  char **win = map_pages(STEADY_WINDOW * sizeof *win);

  for (size_t i = 0; i < STEADY_WINDOW; i++) {
    size_t s = steady_size(&rng);
    win[i] = xmalloc(s);
    touch_pages(win[i], s);
  }
  pthread_barrier_wait(&sh->start);

  /* The stop flag is checked before every op (a plain load), so the ops
   * counted are those done while main's clocks ran. */
  uint64_t ops = 0;
  while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
    size_t i = (size_t)(rng_next(&rng) % STEADY_WINDOW);
    free(win[i]);
    size_t s = steady_size(&rng);
    win[i] = xmalloc(s);
    touch_pages(win[i], s);
    ops++;
  }
  arg->ops = ops;

  /* Not timed. */
  for (size_t i = 0; i < STEADY_WINDOW; i++) free(win[i]);
  munmap(win, STEADY_WINDOW * sizeof *win);
  return NULL;
}

static uint64_t process_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int run_steady(unsigned nthreads, double secs) {
  if (nthreads < 1 || nthreads > 64) die("steady: threads must be 1..64");
  if (!(secs > 0)) die("steady: seconds must be > 0");
  steady_shared_t sh = {0};
  pthread_barrier_init(&sh.start, NULL, nthreads + 1);
  pthread_t tid[64];
  steady_arg_t args[64];
  for (unsigned i = 0; i < nthreads; i++) {
    args[i] = (steady_arg_t){.sh = &sh, .id = i};
    if (pthread_create(&tid[i], NULL, steady_worker, &args[i]) != 0) die("pthread_create");
  }

  pthread_barrier_wait(&sh.start); /* every window is full: go */
  uint64_t t0 = now_ns(), cpu0 = process_cpu_ns();
  sleep_until_ns(t0 + (uint64_t)(secs * 1e9));
  atomic_store_explicit(&sh.stop, 1, memory_order_relaxed);
  uint64_t t1 = now_ns(), cpu1 = process_cpu_ns();

  uint64_t total = 0;
  for (unsigned i = 0; i < nthreads; i++) {
    pthread_join(tid[i], NULL);
    total += args[i].ops;
  }
  pthread_barrier_destroy(&sh.start);

  double wall = (double)(t1 - t0) / 1e9, cpu = (double)(cpu1 - cpu0) / 1e9;
  printf("steady threads=%u secs=%.3f cpu_s=%.3f ops=%llu ops_per_s=%.0f ops_per_cpu_s=%.0f\n",
         nthreads, wall, cpu, (unsigned long long)total, (double)total / wall,
         cpu > 0 ? (double)total / cpu : 0.0);
  fflush(stdout);
  return 0;
}

/* ------------------------------------------------------------- main */

static void usage(void) {
  fprintf(stderr,
          "usage: memory burst|burst-exit [threads]\n"
          "       memory frag\n"
          "       memory steady [threads] [seconds]\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1];
  if (strcmp(mode, "burst") == 0 || strcmp(mode, "burst-exit") == 0) {
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    return run_burst(strcmp(mode, "burst-exit") == 0, threads);
  }
  if (strcmp(mode, "frag") == 0) return run_frag();
  if (strcmp(mode, "steady") == 0) {
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 4;
    double secs = argc > 3 ? atof(argv[3]) : 3.0;
    return run_steady(threads, secs);
  }
  usage();
  return 2;
}
