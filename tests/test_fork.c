/* test_fork.c - fork while other threads allocate.
 *
 * usage: test_fork [iterations]   (default 50)
 *
 * Three threads allocate, reallocate and free in a loop (all tiers) while
 * the main thread forks repeatedly. Each child must find the allocator
 * usable: it checks and frees a block allocated before the fork, allocates
 * and frees in every tier, starts a thread that does the same, and exits 0.
 * A child that deadlocks is killed by alarm() and reported. Then the same
 * from a single-threaded process, including a grandchild.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>

#include "strata.h"
#include "testlib.h"

static atomic_int stop;
static atomic_long worker_ops;

/* Patterns (testlib's) cover the first 64 KiB and the last 4 KiB of a block
 * (page faults are what makes big blocks slow, and a child has many). */
#define HEAD (64 * KiB)
#define TAIL (4 * KiB)
static void fill(void *p, size_t n, unsigned tag) {
  unsigned char *c = p;
  for (size_t i = 0; i < n; i++) {
    if (i == HEAD && n > HEAD + TAIL) i = n - TAIL;
    c[i] = pattern_byte(i, tag);
  }
}
static int verify(const void *p, size_t n, unsigned tag) {
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++) {
    if (i == HEAD && n > HEAD + TAIL) i = n - TAIL;
    if (c[i] != pattern_byte(i, tag)) return 0;
  }
  return 1;
}

static void *worker(void *arg) {
  uint64_t r = mix64((uint64_t)(uintptr_t)arg + 7);
  enum { S = 64 };
  void *v[S] = {0};
  size_t vn[S] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    r = mix64(r);
    int k = (int)(r % S);
    if (v[k]) {
      if (!verify(v[k], vn[k] < 256 ? vn[k] : 256, (unsigned)k)) {
        failf("worker block corrupted");
        abort();
      }
      if (r & 0x100) {
        strata_free(v[k]);
        v[k] = NULL;
        continue;
      }
    }
    size_t n;
    uint64_t c = (r >> 16) % 1000;
    if (c < 900) n = 1 + (r >> 24) % 4096;
    else if (c < 990) n = 32 * KiB + (r >> 24) % (600 * KiB);
    else if (c < 998) n = 1 * MiB + (r >> 24) % (6 * MiB);
    else n = 16 * MiB + (r >> 24) % (4 * MiB);
    void *q = strata_realloc(v[k], n);
    if (!q) {
      failf("worker realloc(%zu) failed", n);
      abort();
    }
    v[k] = q;
    vn[k] = n;
    fill(q, n < 256 ? n : 256, (unsigned)k);
    atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
  }
  for (int k = 0; k < S; k++) strata_free(v[k]);
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) {
    size_t n = (size_t)(1 + (i * 37) % 3000) << (i % 8);
    void *p = strata_malloc(n);
    if (!p) return (void *)1;
    memset(p, i, n);
    strata_free(p);
  }
  return NULL;
}

/* What a child does; returns its exit status. */
static int child_work(void *pre, size_t pre_n, int depth) {
  alarm(30); /* a deadlocked child dies by SIGALRM */
  if (pre && !verify(pre, pre_n, 0x77)) {
    failf("child: block from before the fork corrupted");
    return 2;
  }
  if (pre) strata_free(pre);
  static const size_t sizes[] = {1, 16, 100, 1000, 5000, 32 * KiB, 40000, 300 * KiB,
                                 3 * MiB, 20 * MiB};
  enum { NS = sizeof sizes / sizeof sizes[0] };
  void *v[NS];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < NS; i++) {
      if (round > 0 && sizes[i] > MiB) {
        v[i] = NULL;
        continue;
      }
      v[i] = (i % 2) ? strata_calloc(1, sizes[i]) : strata_malloc(sizes[i]);
      if (!v[i]) {
        failf("child: malloc(%zu) failed", sizes[i]);
        return 3;
      }
      fill(v[i], sizes[i], (unsigned)i);
    }
    for (int i = 0; i < NS; i++) {
      if (!v[i]) continue;
      if (!verify(v[i], sizes[i], (unsigned)i)) {
        failf("child: block of %zu bytes corrupted", sizes[i]);
        return 4;
      }
      void *q = strata_realloc(v[i], sizes[i] * 2);
      if (!q) return 5;
      strata_free(q);
    }
  }
  void *a = strata_aligned_alloc(4096, 10000);
  if (!a || ((uintptr_t)a & 4095)) return 6;
  strata_free(a);
  pthread_t t;
  void *ret = NULL;
  if (pthread_create(&t, NULL, child_thread, NULL) != 0) return 7;
  pthread_join(t, &ret);
  if (ret) return 8;
  if (depth > 0) {
    /* Fork again from the child (a grandchild). */
    void *g = strata_malloc(500);
    if (!g) return 9;
    fill(g, 500, 0x77);
    pid_t pid = fork();
    if (pid < 0) return 10;
    if (pid == 0) _exit(child_work(g, 500, depth - 1));
    strata_free(g);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      failf("grandchild failed (status %#x)", st);
      return 11;
    }
  }
  return 0;
}

static void run_fork(int iter, int depth, int use_exit) {
  size_t pre_n = 64 + (size_t)iter * 997 % (200 * KiB);
  void *pre = strata_malloc(pre_n);
  if (!pre) {
    failf("malloc(%zu) failed", pre_n);
    return;
  }
  fill(pre, pre_n, 0x77);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    failf("fork: %s", strerror(errno));
    strata_free(pre);
    return;
  }
  if (pid == 0) {
    int rc = child_work(pre, pre_n, depth);
    if (use_exit) exit(rc);
    _exit(rc);
  }
  /* The parent's copy is still its own. */
  CHECK(verify(pre, pre_n, 0x77), "parent block corrupted after fork");
  strata_free(pre);
  int st;
  if (waitpid(pid, &st, 0) != pid) {
    failf("waitpid: %s", strerror(errno));
    return;
  }
  if (WIFSIGNALED(st))
    failf("iteration %d: child killed by signal %d (%s)%s", iter, WTERMSIG(st),
          strsignal(WTERMSIG(st)), WTERMSIG(st) == SIGALRM ? " - deadlocked after fork?" : "");
  else
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "iteration %d: child exited with status %d", iter,
          WEXITSTATUS(st));
}

int main(int argc, char **argv) {
  int iters = argc > 1 ? atoi(argv[1]) : 50;

  /* Forks from a single-threaded process first. */
  for (int i = 0; i < 5; i++) run_fork(i, i % 2, i % 2);

  enum { W = 3 };
  pthread_t t[W];
  for (int i = 0; i < W; i++)
    REQUIRE(pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) == 0, "pthread_create failed");
  for (int i = 0; i < iters; i++) {
    /* Let the workers get going between forks. */
    long before = atomic_load(&worker_ops);
    while (atomic_load(&worker_ops) < before + 200) sched_yield();
    run_fork(i, i % 10 == 0, i % 3 == 0);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < W; i++) pthread_join(t[i], NULL);

  /* And again single-threaded, after the threads are gone. */
  for (int i = 0; i < 5; i++) run_fork(100 + i, 1, i % 2);

  info("%d forks (%d with threads running), %ld worker operations", iters + 10, iters,
       atomic_load(&worker_ops));
  return checks_result("test_fork");
}
