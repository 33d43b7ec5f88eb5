/* test_single_thread.c - Strata never makes a single-threaded process
 * multithreaded, and memory still goes back to the OS.
 *
 * A process that has one thread may do what a multithreaded one may not:
 * unshare(CLONE_NEWUSER), fork from a signal handler (see test_parity),
 * and glibc and libstdc++ skip locked instructions while
 * __libc_single_threaded is 1. So the purge thread starts only once a second
 * thread of the program allocates, and ends when the program is down to one
 * thread again; a single-threaded program returns memory from its own
 * allocator calls (the decay on slow paths, malloc_trim).
 *
 *   test_single_thread [-l | NAME... | --no-fork NAME]   (testlib.h)
 *
 * STRATA_TEST_SCALE (default 1) divides the sizes of the bursts, for the
 * checking builds.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/single_threaded.h>

#include "testlib.h"

static char self_exe[4096];
static size_t scale = 1;

/* Takes and frees `total` bytes in blocks of 16 B to 1 MiB (log-uniform
 * sizes), at most 256 alive at a time, each written at both ends. */
static void churn(size_t total, uint64_t seed) {
  enum { LIVE = 256 };
  void *live[LIVE] = {0};
  for (size_t taken = 0; taken < total;) {
    unsigned slot = (unsigned)(rnd(&seed) % LIVE);
    size_t size = (size_t)16 << (rnd(&seed) % 17);
    size += rnd(&seed) % size;
    if (size > MiB) size = MiB;
    free(live[slot]);
    char *p = malloc(size);
    if (!p) { failf("malloc(%zu) failed", size); return; }
    p[0] = p[size - 1] = 1;
    live[slot] = p;
    taken += size;
  }
  for (int i = 0; i < LIVE; i++) free(live[i]);
}

/* Can this process enter a new user namespace? 0, or the errno. */
static int try_unshare_user(void) { return unshare(CLONE_NEWUSER) == 0 ? 0 : errno; }

/* Does unshare(CLONE_NEWUSER) work here at all? A fresh single-threaded
 * process (this program exec'd, before anything allocates) tries. */
static int unshare_baseline(void) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(self_exe, self_exe, "--unshare-probe", (char *)NULL);
    _exit(126);
  }
  int st = pid > 0 ? wait_or_kill(pid, 10.0) : -2;
  return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

/* ---- cases ------------------------------------------------------------------------ */
static int case_one_thread_after_churn(void) {
  churn(GiB / scale, 1);
  CHECK(thread_count() == 1, "after 1 GiB taken and freed the process has %ld threads", thread_count());
  CHECK(__libc_single_threaded == 1, "__libc_single_threaded is %d", __libc_single_threaded);
  return 0;
}

static int case_unshare_after_churn(void) {
  int base = unshare_baseline();
  if (base) return skip("unshare(CLONE_NEWUSER) fails here without any allocation too (%s)", strerror(base));
  churn(GiB / scale, 2);
  int err = try_unshare_user();
  CHECK(err == 0, "unshare(CLONE_NEWUSER) after 1 GiB taken and freed: %s (threads: %ld)",
        strerror(err), thread_count());
  return 0;
}

/* A burst of blocks of 16 to 1024 bytes, 1 GiB over 4 threads, freed by the
 * threads, which then stay alive and idle: the purge thread (there are
 * threads now) returns the memory within a second. Once the threads are
 * joined, the purge thread ends: the process has one thread again. */
enum { THREADS = 4 };
static pthread_barrier_t burst_bar;
static void *burst_thread(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  size_t n = GiB / scale / THREADS / 520;
  void **v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    size_t size = 16 + rnd(&seed) % 1009;
    v[i] = malloc(size);
    memset(v[i], 0x5a, size);
  }
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
  pthread_barrier_wait(&burst_bar);     /* all freed */
  pthread_barrier_wait(&burst_bar);     /* idle until the main thread has looked */
  return NULL;
}

static int case_threads_burst_then_one(void) {
  size_t rss0 = resident_bytes(), peak = 0;
  pthread_t t[THREADS];
  pthread_barrier_init(&burst_bar, NULL, THREADS + 1);
  for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, burst_thread, (void *)(uintptr_t)(i + 1));
  pthread_barrier_wait(&burst_bar);
  peak = resident_bytes() - rss0;
  sleep_us(1000 * 1000);                /* idle: no allocator call */
  size_t left = resident_bytes() - rss0;
  info("burst of %zu MiB over %d threads: %zu MiB resident after the frees, %zu MiB after 1 s idle",
       GiB / scale / MiB, THREADS, peak / MiB, left / MiB);
  CHECK(left <= GiB / scale / 20, "1 s after the burst %zu MiB of %zu MiB is still resident",
        left / MiB, GiB / scale / MiB);
  pthread_barrier_wait(&burst_bar);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  double t0 = now_s();
  while (thread_count() > 1 && now_s() < t0 + 5.0) sleep_us(10 * 1000);
  info("one thread again %.2f s after the join", now_s() - t0);
  CHECK(thread_count() == 1, "5 s after the last thread was joined the process has %ld threads",
        thread_count());
  if (unshare_baseline() == 0) {
    int err = try_unshare_user();
    CHECK(err == 0, "unshare(CLONE_NEWUSER) once the threads are gone: %s", strerror(err));
  }
  return 0;
}

/* A single-threaded program that frees a burst and goes idle keeps it (no
 * thread of Strata's runs); its next allocator calls after the decay time
 * return it, and malloc_trim(0) does at once. */
static void fill_and_free(size_t total, uint64_t seed) {
  size_t n = total / (256 * KiB);
  void **v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++) {
    size_t size = 32 * KiB + rnd(&seed) % (480 * KiB);   /* the large tier */
    v[i] = malloc(size);
    memset(v[i], 1, size);
  }
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

static int case_single_thread_returns(void) {
  size_t total = 256 * MiB / scale, rss0 = resident_bytes();
  fill_and_free(total, 3);
  size_t freed = resident_bytes() - rss0;
  sleep_us(1000 * 1000);
  size_t idle = resident_bytes() - rss0;
  int calls = 0;
  while (resident_bytes() - rss0 > total / 20 && calls < 1000) {   /* slow-path calls */
    free(malloc(64 * KiB));
    calls++;
  }
  size_t after = resident_bytes() - rss0;
  info("%zu MiB freed: %zu MiB resident at once, %zu MiB after 1 s idle, %zu MiB after %d calls",
       total / MiB, freed / MiB, idle / MiB, after / MiB, calls);
  CHECK(after <= total / 20, "after 1 s and %d allocator calls %zu MiB of %zu MiB is still resident",
        calls, after / MiB, total / MiB);
  fill_and_free(total, 4);
  malloc_trim(0);
  after = resident_bytes() - rss0;
  info("malloc_trim(0) right after the frees: %zu MiB resident", after / MiB);
  CHECK(after <= total / 20, "after malloc_trim(0) %zu MiB of %zu MiB is still resident", after / MiB, total / MiB);
  CHECK(thread_count() == 1, "the process has %ld threads", thread_count());
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--unshare-probe") == 0) _exit(try_unshare_user());
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n > 0) self_exe[n] = 0;
  const char *s = getenv("STRATA_TEST_SCALE");
  if (s && atoi(s) > 0) scale = (size_t)atoi(s);
  static const case_t cases[] = {
    {"one-thread-after-1gib", case_one_thread_after_churn, 120},
    {"unshare-after-1gib", case_unshare_after_churn, 120},
    {"threads-burst-then-one", case_threads_burst_then_one, 120},
    {"single-thread-returns-memory", case_single_thread_returns, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
