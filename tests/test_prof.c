/* test_prof.c - the heap profiler (STRATA_OPTIONS=prof=1,prof_rate=64k,
 * set by meson): its profiles parse as google-pprof reads them, the totals
 * add up, the estimates of known sites are right, a freed sampled block
 * leaves the in-use figures whatever thread frees it, and dumps work from
 * threads, during heavy allocation and in a fork child.
 *
 * The test is linked with -rdynamic, and its sites are noipa (no clone of
 * theirs hides their names), so dladdr names the sites' functions.
 * Run with prof off (the prof_off test), only dump-errors applies.
 */
#include <strata.h>

#include "testlib.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sys/wait.h>

/* The sampling rate the profiles say (heap_v2/RATE); 64 KiB as meson sets
 * it, but in the prof_unbiased test. */
static double rate = 65536.0;

static char *out_dir(void) {
  const char *d = getenv("STRATA_PROF_DIR");
  return (char *)(d ? d : "/tmp");
}

static void dump_path(char *buf, size_t cap, const char *what) {
  snprintf(buf, cap, "%s/test_prof.%d.%s.heap", out_dir(), (int)getpid(), what);
}

/* One site of a profile, with what is known of it. */
typedef struct {
  double live_n, live_b, alloc_n, alloc_b;
  char names[256];                /* the functions of its frames that dladdr names */
} site_t;

typedef struct {
  double live_n, live_b, alloc_n, alloc_b;   /* the header's */
  double sum[4];                              /* the entries' */
  int nsites;
  site_t sites[4096];
  bool maps;                                  /* MAPPED_LIBRARIES with the maps */
} profile_t;

static profile_t prof;

/* Parse the file; false (with a message) when it is not a heap_v2 profile
 * (its rate goes to `rate`). */
static bool parse(const char *path, profile_t *p) {
  memset(p, 0, sizeof *p);
  FILE *f = fopen(path, "r");
  if (!f) { failf("cannot open %s", path); return false; }
  char line[8192];
  unsigned long long a, b, c, d, header_rate = 0;
  bool ok = fgets(line, sizeof line, f) &&
            sscanf(line, "heap profile: %llu: %llu [ %llu: %llu] @ heap_v2/%llu", &a, &b, &c, &d,
                   &header_rate) == 5;
  if (!ok || !header_rate) {
    failf("%s: bad header: %s", path, line);
    fclose(f);
    return false;
  }
  p->live_n = a; p->live_b = b; p->alloc_n = c; p->alloc_b = d;
  rate = (double)header_rate;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "MAPPED_LIBRARIES:", 17) == 0) {
      p->maps = fgets(line, sizeof line, f) && strchr(line, '-');
      break;
    }
    if (line[0] == '\n') continue;
    int used = 0;
    if (sscanf(line, " %llu: %llu [ %llu: %llu] @%n", &a, &b, &c, &d, &used) != 4 || !used) {
      failf("%s: bad entry: %s", path, line);
      fclose(f);
      return false;
    }
    p->sum[0] += a; p->sum[1] += b; p->sum[2] += c; p->sum[3] += d;
    if (p->nsites == (int)(sizeof p->sites / sizeof p->sites[0])) continue;
    site_t *s = &p->sites[p->nsites++];
    s->live_n = a; s->live_b = b; s->alloc_n = c; s->alloc_b = d;
    for (char *t = strtok(line + used, " \n"); t; t = strtok(NULL, " \n")) {
      Dl_info info;
      void *pc = (void *)strtoull(t, NULL, 16);
      if (dladdr(pc, &info) && info.dli_sname && strlen(s->names) + strlen(info.dli_sname) + 2 < sizeof s->names) {
        strcat(s->names, info.dli_sname);
        strcat(s->names, " ");
      }
    }
  }
  fclose(f);
  CHECK(p->sum[0] == p->live_n && p->sum[1] == p->live_b && p->sum[2] == p->alloc_n && p->sum[3] == p->alloc_b,
        "%s: the entries do not add up to the header", path);
  CHECK(p->maps, "%s: no MAPPED_LIBRARIES with the process's mappings", path);
  return true;
}

/* The estimate pprof makes of a site's figure (heap_v2: each sample of an
 * allocation of s bytes stands for 1 / (1 - exp(-s / rate)) of them). */
static double unsample(double n, double bytes, double value) {
  return n ? value / (1 - exp(-bytes / n / rate)) : 0;
}

/* Sum over the sites whose stack names fn (with a leading ^, whose
 * innermost named frame is fn: the sites of fn's own calls, not of calls
 * made below them): estimated live bytes, estimated allocated bytes, raw
 * live samples, raw allocated samples. */
static void site_totals(const profile_t *p, const char *fn, double out[4]) {
  memset(out, 0, 4 * sizeof *out);
  bool innermost = fn[0] == '^';
  char word[128];
  snprintf(word, sizeof word, "%s ", fn + innermost);
  for (int i = 0; i < p->nsites; i++) {
    const site_t *s = &p->sites[i];
    const char *at = strstr(s->names, word);
    if (!at || (innermost && at != s->names)) continue;
    out[0] += unsample(s->live_n, s->live_b, s->live_b);
    out[1] += unsample(s->alloc_n, s->alloc_b, s->alloc_b);
    out[2] += s->live_n;
    out[3] += s->alloc_n;
  }
}

static bool near(double got, double want, double tolerance) {
  return fabs(got - want) <= tolerance * want;
}

static void *volatile sink;

/* p, after the call that returned it: the call is then no tail call, and
 * the caller's frame is on the stack it records. */
static inline void *kept(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

__attribute__((noipa)) void *prof_leaky(size_t n) {
  void *p = malloc(n);
  memset(p, 1, n);
  return p;
}

__attribute__((noipa)) void prof_temporary(size_t n) {
  void *p = malloc(n);
  memset(p, 2, n);
  sink = p;
  free(p);
}

__attribute__((noipa)) void *prof_leaky_large(size_t n) {
  void *p = prof_leaky(n);
  return kept(p);
}

/* 32 MiB held in 64-byte blocks, 32 MiB allocated and freed in 48-byte ones,
 * 20 MiB held in 200 KiB blocks: the estimates are within 25 % (about 5
 * standard deviations of the sampling at this rate) and a site whose blocks
 * were all freed holds nothing. */
static int case_estimates(void) {
  enum { SMALL = 64, N = (32 << 20) / SMALL, BIG = 200 << 10, NBIG = 100 };
  void **keep = malloc(N * sizeof *keep), *big[NBIG];
  for (int i = 0; i < N; i++) {
    keep[i] = prof_leaky(SMALL);
    prof_temporary(48);
  }
  for (int i = 0; i < NBIG; i++) big[i] = prof_leaky_large(BIG);
  char path[512];
  dump_path(path, sizeof path, "estimates");
  REQUIRE(strata_prof_dump(path) == 0, "strata_prof_dump(%s) failed", path);
  REQUIRE(parse(path, &prof), "profile unreadable");
  double leak[4], temp[4], large[4];
  site_totals(&prof, "prof_leaky", leak);
  site_totals(&prof, "prof_temporary", temp);
  site_totals(&prof, "prof_leaky_large", large);
  double small_live = leak[0] - large[0];
  CHECK(near(small_live, 32.0 * MiB, 0.25), "in use at prof_leaky (64 B): %.1f MiB, not about 32", small_live / MiB);
  CHECK(near(large[0], (double)NBIG * BIG, 0.25), "in use at prof_leaky_large: %.1f MiB, not about %.1f",
        large[0] / MiB, (double)NBIG * BIG / MiB);
  CHECK(temp[2] == 0 && temp[3] > 0, "prof_temporary: %.0f samples live of %.0f, not 0 of some", temp[2], temp[3]);
  CHECK(near(temp[1], 24.0 * MiB, 0.25), "allocated at prof_temporary: %.1f MiB, not about 24", temp[1] / MiB);
  for (int i = 0; i < N; i++) free(keep[i]);
  for (int i = 0; i < NBIG; i++) free(big[i]);
  free(keep);
  REQUIRE(strata_prof_dump(path) == 0 && parse(path, &prof), "second dump");
  site_totals(&prof, "prof_leaky", leak);
  CHECK(leak[2] == 0 && leak[3] > 0, "after the frees, prof_leaky still holds %.0f samples", leak[2]);
  if (!atomic_load(&failures)) unlink(path);
  return 0;
}

/* A sampled block moved by realloc (huge blocks move with mremap, small and
 * large ones are copied) is followed; freed, it leaves nothing. */
__attribute__((noipa)) void *prof_grown(size_t n) {
  void *p = malloc(n);
  return kept(p);
}

static int case_realloc(void) {
  enum { N = 300 };
  void *p[N];
  for (int i = 0; i < N; i++) p[i] = prof_grown(i % 3 == 0 ? 64 << 10 : i % 3 == 1 ? 3000 : 20 << 20);
  for (int i = 0; i < N; i++) {
    p[i] = realloc(p[i], i % 3 == 2 ? 48 << 20 : 300 << 10);
    REQUIRE(p[i], "realloc failed");
    memset(p[i], 3, 64);
  }
  char path[512];
  dump_path(path, sizeof path, "realloc");
  REQUIRE(strata_prof_dump(path) == 0 && parse(path, &prof), "dump");
  double g[4];
  site_totals(&prof, "prof_grown", g);
  CHECK(g[2] > 0, "no sample of prof_grown is live while its blocks are");
  for (int i = 0; i < N; i++) free(p[i]);
  REQUIRE(strata_prof_dump(path) == 0 && parse(path, &prof), "dump");
  site_totals(&prof, "prof_grown", g);
  CHECK(g[2] == 0 && g[3] > 0, "prof_grown: %.0f samples live after every block was freed", g[2]);
  unlink(path);
  return 0;
}

/* Threads allocate and hand their blocks to the next thread, which frees
 * them: no sample stays live, and the large blocks the threads kept for
 * their next samples (prof.h's stash) went back when they exited. */
enum { THREADS = 4, PER_THREAD = 40000 };
static void **handed[THREADS];
static pthread_barrier_t barrier;

__attribute__((noipa)) void *prof_worker_alloc(size_t n) {
  void *p = malloc(n);
  return kept(p);
}

static void *worker(void *arg) {
  int t = (int)(intptr_t)arg;
  handed[t] = malloc(PER_THREAD * sizeof(void *));
  for (int i = 0; i < PER_THREAD; i++) handed[t][i] = prof_worker_alloc(16 + (size_t)(i % 64) * 16);
  pthread_barrier_wait(&barrier);
  void **theirs = handed[(t + 1) % THREADS];
  for (int i = 0; i < PER_THREAD; i++) free(theirs[i]);
  return NULL;
}

/* Large blocks and live samples (the profile's), once the calling thread
 * gave back the block it kept for its next sample (strata_collect). */
typedef struct {
  long long large;
  double samples;
} held_t;

static bool held(held_t *h, const char *path) {
  strata_stats_t st;
  strata_collect();
  strata_stats(&st);
  h->large = (long long)(st.large.nmalloc - st.large.nfree);
  if (strata_prof_dump(path) != 0 || !parse(path, &prof)) return false;
  h->samples = prof.live_n;
  return true;
}

/* The threads' blocks are all freed, but the runtime may keep blocks of
 * its own that were sampled: glibc keeps each thread's TLS vector with its
 * cached stack, and Strata's purge thread, which the workers' allocations
 * may start, holds its own. Those are live samples; a block a thread kept
 * for its next sample is not, so every large block that stayed live must
 * be a sample that did. */
static int case_threads(void) {
  char path[512];
  dump_path(path, sizeof path, "threads");
  held_t before, after;
  REQUIRE(held(&before, path), "dump");
  pthread_t th[THREADS];
  pthread_barrier_init(&barrier, NULL, THREADS);
  for (int t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < THREADS; t++) free(handed[t]);
  pthread_barrier_destroy(&barrier);
  REQUIRE(held(&after, path), "dump");
  CHECK(after.large - before.large <= after.samples - before.samples,
        "%lld large blocks live after the threads exited, %lld before, but %.0f live samples "
        "after and %.0f before: an exited thread kept a block",
        after.large, before.large, after.samples, before.samples);
  double w[4];
  site_totals(&prof, "^prof_worker_alloc", w);
  CHECK(w[3] > 100, "only %.0f samples at prof_worker_alloc", w[3]);
  CHECK(w[2] == 0, "%.0f samples of prof_worker_alloc live after other threads freed them all", w[2]);
  unlink(path);
  return 0;
}

/* Dumps while two threads allocate and free blocks of every tier: each
 * dump is whole and adds up. */
static atomic_bool stop;

static void *churn(void *arg) {
  uint64_t seed = (uintptr_t)arg;
  void *slot[256] = {0};
  while (!atomic_load(&stop)) {
    unsigned i = (unsigned)(rnd(&seed) % 256);
    free(slot[i]);
    size_t n = rnd(&seed) % 8 == 0 ? (size_t)(rnd(&seed) % (300 << 10)) : (size_t)(rnd(&seed) % 2048);
    slot[i] = malloc(n + 1);
  }
  for (int i = 0; i < 256; i++) free(slot[i]);
  return NULL;
}

static int case_dump_under_load(void) {
  pthread_t th[2];
  atomic_store(&stop, false);
  for (int t = 0; t < 2; t++) pthread_create(&th[t], NULL, churn, (void *)(uintptr_t)(t + 1));
  char path[512];
  dump_path(path, sizeof path, "load");
  double t0 = now_s();
  int dumps = 0;
  while (now_s() - t0 < 1.5 || dumps < 10) {
    REQUIRE(strata_prof_dump(path) == 0, "dump %d failed", dumps);
    REQUIRE(parse(path, &prof), "dump %d unreadable", dumps);
    dumps++;
  }
  atomic_store(&stop, true);
  for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
  CHECK(prof.alloc_n > 0, "no samples after %d dumps under load", dumps);
  unlink(path);
  return 0;
}

/* A fork child profiles on: its own dump shows its own site, and at exit
 * it writes <prof_out>.<its pid>.heap. */
__attribute__((noipa)) void *prof_in_child(size_t n) {
  void *p = prof_leaky(n);
  return kept(p);
}

static int case_fork(void) {
  void *parent_block = prof_leaky(1 << 20);
  int fds[2];
  REQUIRE(pipe(fds) == 0, "pipe");
  pid_t pid = fork();
  REQUIRE(pid >= 0, "fork");
  if (pid == 0) {
    for (int i = 0; i < 2000; i++) sink = prof_in_child(4096);
    char path[512];
    dump_path(path, sizeof path, "child");
    int ok = strata_prof_dump(path) == 0 && parse(path, &prof);
    double c[4];
    site_totals(&prof, "prof_in_child", c);
    ok = ok && c[2] > 0;
    unlink(path);
    if (write(fds[1], &ok, sizeof ok) != sizeof ok) _exit(3);
    exit(ok ? 0 : 1);               /* exit: the at-exit profile is written */
  }
  close(fds[1]);
  int ok = 0, status = 0;
  CHECK(read(fds[0], &ok, sizeof ok) == sizeof ok && ok, "the child's dump lacks its own site");
  close(fds[0]);
  REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
  char path[512];
  snprintf(path, sizeof path, "%s/test_prof.%d.heap", out_dir(), (int)pid);
  if (parse(path, &prof)) {
    double c[4];
    site_totals(&prof, "prof_in_child", c);
    CHECK(c[2] > 0, "the child's exit profile lacks its site");
    unlink(path);
  }
  free(parent_block);
  return 0;
}

/* Stacks through frames whose size changes from call to call (alloca) and
 * through recursion of changing depth: the sampled stacks still name the
 * sites (the walk over learned frame sizes must not take a wrong one). */
__attribute__((noipa)) void *prof_varying(int depth, size_t pad) {
  volatile char *room = __builtin_alloca(pad);
  room[0] = (char)depth;
  void *p = depth ? prof_varying(depth - 1, pad * 3 % 4000 + 16) : prof_leaky(4096);
  return kept(p);
}

static int case_varying_frames(void) {
  enum { N = 20000 };
  void **keep = malloc(N * sizeof *keep);
  for (int i = 0; i < N; i++) keep[i] = prof_varying(i % 7, (size_t)(i % 13) * 40 + 16);
  char path[512];
  dump_path(path, sizeof path, "varying");
  REQUIRE(strata_prof_dump(path) == 0 && parse(path, &prof), "dump");
  double v[4], all[4];
  site_totals(&prof, "prof_varying", v);
  site_totals(&prof, "prof_leaky", all);
  CHECK(v[2] > 100 && v[2] == all[2], "%.0f live samples name prof_varying, %.0f prof_leaky: not all of them",
        v[2], all[2]);
  CHECK(near(v[0], (double)N * 4096, 0.25), "in use at prof_varying: %.1f MiB, not about %.1f", v[0] / MiB,
        (double)N * 4096 / MiB);
  for (int i = 0; i < N; i++) free(keep[i]);
  free(keep);
  unlink(path);
  return 0;
}

/* Each allocation is sampled with probability 1 - exp(-size/rate) of its
 * own size, though small classes count down their block size: 64 MiB of
 * 200-byte blocks (class 224) at the prof_unbiased test's 4 KiB rate give
 * about 16,000 samples (a standard deviation of 0.8 %); their count is
 * within 4 % of the expected one (sampling by the class size alone gives
 * 12 % more). */
static int case_unbiased(void) {
  enum { SIZE = 200, N = (64 << 20) / SIZE };
  void **keep = malloc(N * sizeof *keep);
  for (int i = 0; i < N; i++) keep[i] = prof_leaky(SIZE);
  char path[512];
  dump_path(path, sizeof path, "unbiased");
  REQUIRE(strata_prof_dump(path) == 0 && parse(path, &prof), "dump");
  if (rate > 8192) {
    for (int i = 0; i < N; i++) free(keep[i]);
    free(keep);
    unlink(path);
    return CASE_SKIPPED;                  /* too few samples at this rate */
  }
  double l[4];
  site_totals(&prof, "prof_leaky", l);
  double want = N * (1 - exp(-SIZE / rate));
  CHECK(fabs(l[2] - want) <= 0.04 * want, "%.0f samples of %d blocks of %d bytes at a rate of %.0f: "
        "%.0f expected", l[2], N, SIZE, rate, want);
  for (int i = 0; i < N; i++) free(keep[i]);
  free(keep);
  unlink(path);
  return 0;
}

/* Errors, with the profiler on or off. */
static int case_dump_errors(void) {
  const char *opts = getenv("STRATA_OPTIONS");
  bool on = opts && strstr(opts, "prof=1");
  CHECK(strata_prof_dump(NULL) == (on ? EINVAL : ENOENT), "strata_prof_dump(NULL)");
  CHECK(strata_prof_dump("/nonexistent-dir/x.heap") == ENOENT, "a path in a missing directory");
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"estimates", case_estimates, 300},
    {"realloc", case_realloc, 120},
    {"threads", case_threads, 300},
    {"dump-under-load", case_dump_under_load, 120},
    {"fork", case_fork, 120},
    {"varying-frames", case_varying_frames, 120},
    {"unbiased", case_unbiased, 120},
    {"dump-errors", case_dump_errors, 30},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
