/* test_misuse.c - misuse is detected: one line on stderr, then abort.
 *
 * Each case (testlib.h: cases_main) runs the misuse in a child of its own
 * (run_child) whose stderr goes to a pipe. The child sends the address it is
 * about to misuse through a second pipe, then does the bad call. The case
 * passes when the child dies by SIGABRT and its stderr holds "strata: CALL("
 * followed by that address (in hex). The exact wording after it is not
 * checked.
 *
 * The last cases must not abort: copying the bytes of freed blocks (free-list
 * links, canaries, whatever the allocator keeps there) into live blocks and
 * freeing those is legitimate.
 *
 * Uses the strata_* API only. Some cases free from a second thread, to go
 * through the remote-free path.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

static int info_pipe[2] = {-1, -1}; /* the address pipe */
static int info_fd = -1;            /* its end in the child */

/* Tell the parent which address the diagnostic must name. */
static void expect_addr(const void *p) {
  uintptr_t a = (uintptr_t)p;
  if (write(info_fd, &a, sizeof a) != (ssize_t)sizeof a) _exit(99);
}

/* ---- the cases: each runs in a child ----------------------------------- */
static char static_array[256] __attribute__((aligned(64)));

static void c_free_badbeef(void) {
  void *p = (void *)(uintptr_t)0xbadbeef;
  expect_addr(p);
  strata_free(hide_ptr(p));
}
/* The very first allocator call of a fresh process (exec'd; see main). */
static void c_first_call_badbeef(void) {
  expect_addr((void *)(uintptr_t)0xbadbeef);
  execl("/proc/self/exe", "test_misuse", "--first-call-badbeef", (char *)NULL);
  _exit(98);
}
/* The canary words around a buddy arena's metadata (arena start: the
 * block's 64 MiB-aligned base) are checked when a block is freed. */
static void c_arena_canary(void) {
  char *p = strata_malloc(300 * 1024);
  uint64_t *arena = (uint64_t *)(((uintptr_t)p - 1) & ~(((uintptr_t)64 << 20) - 1));
  arena[0] ^= 0x5a5a;
  expect_addr(p);
  strata_free(hide_ptr(p));
}
static void c_free_stack(void) {
  char buf[256] __attribute__((aligned(64)));
  memset(buf, 0, sizeof buf);
  expect_addr(buf + 64);
  strata_free(hide_ptr(buf + 64));
}
static void c_free_static(void) {
  expect_addr(static_array);
  strata_free(hide_ptr(static_array));
}
static void *foreign_page(void) {
  void *m = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) _exit(98);
  memset(m, 0, 4 * 4096);
  return m;
}
static void c_free_mmap(void) {
  char *m = foreign_page();
  expect_addr(m + 4096);
  strata_free(hide_ptr(m + 4096));
}
static void c_free_mmap_start(void) {
  char *m = foreign_page();
  expect_addr(m);
  strata_free(hide_ptr(m));
}
static void c_realloc_foreign(void) {
  char *m = foreign_page();
  expect_addr(m + 64);
  void *q = strata_realloc(hide_ptr(m + 64), 100);
  (void)q;
}
static void c_realloc_static(void) {
  expect_addr(static_array);
  void *q = strata_realloc(hide_ptr(static_array), 1000);
  (void)q;
}
static void c_usable_foreign(void) {
  char *m = foreign_page();
  expect_addr(m + 128);
  volatile size_t u = strata_malloc_usable_size(hide_ptr(m + 128));
  (void)u;
}
static void c_free_interior_small(void) {
  char *p = strata_malloc(64);
  char *q = strata_malloc(64); /* keep the span busy */
  expect_addr(p + 16);
  strata_free(hide_ptr(p + 16));
  strata_free(q);
}
static void c_free_interior_small2(void) {
  char *p = strata_malloc(1000);
  expect_addr(p + 512);
  strata_free(hide_ptr(p + 512));
}
static void c_free_interior_large(void) {
  char *p = strata_malloc(300 * KiB);
  expect_addr(p + 64 * KiB);
  strata_free(hide_ptr(p + 64 * KiB));
}
static void c_double_free_small(void) {
  void *p = strata_malloc(48);
  strata_free(p);
  expect_addr(p);
  strata_free(hide_ptr(p));
}
/* Eight 2000-byte blocks from a new thread's first span (carved in address
 * order, two to an OS page), the first kept, the others freed, and
 * strata_collect: the pages of blocks 2..7 go back to the OS with the free
 * keys on them, so the second free must be caught by the span's record of
 * its purged blocks. */
/* Run fn(arg) on a new thread (a new heap) and wait for it. */
static void run_in_thread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  if (pthread_create(&t, NULL, fn, arg)) _exit(95);
  pthread_join(t, NULL);
}

static char *purged_blocks[8];
static void *make_purged_blocks(void *arg) {
  (void)arg;
  for (int i = 0; i < 8; i++) purged_blocks[i] = strata_malloc(2000);
  for (int i = 1; i < 8; i++)
    if (purged_blocks[i] != purged_blocks[0] + i * 2048) _exit(98);   /* not one span */
  for (int i = 1; i < 8; i++) strata_free(purged_blocks[i]);
  strata_collect();
  return NULL;
}
/* The misuses of the purged blocks, each after make_purged_blocks. */
static void free_purged(void) {
  expect_addr(purged_blocks[4]);
  strata_free(hide_ptr(purged_blocks[4]));
}
/* realloc to a size that would keep the block in place. */
static void realloc_purged(void) {
  expect_addr(purged_blocks[4]);
  void *q = strata_realloc(hide_ptr(purged_blocks[4]), 1990);
  (void)q;
}
/* A write after free into block 1, which stays on its span's free list (its
 * page holds the live block 0), found by the next purge's walk of that list. */
static void write_after_free_purge(void) {
  expect_addr(purged_blocks[1]);
  memset(hide_ptr(purged_blocks[1]), 0x41, 16);
  strata_collect();
}
typedef struct { void (*misuse)(void); } purged_case_t;
static void *purged_then(void *arg) {
  make_purged_blocks(NULL);
  ((purged_case_t *)arg)->misuse();
  return NULL;
}
static void c_double_free_purged(void) { run_in_thread(purged_then, &(purged_case_t){free_purged}); }
static void c_realloc_purged(void) { run_in_thread(purged_then, &(purged_case_t){realloc_purged}); }
static void c_write_after_free_purge(void) { run_in_thread(purged_then, &(purged_case_t){write_after_free_purge}); }
/* The double free after the owner exited: the free adopts the span first. */
static void c_double_free_purged_adopted(void) {
  run_in_thread(make_purged_blocks, NULL);
  free_purged();
}
static void c_double_free_small_between(void) {
  enum { N = 100 };
  void *v[N];
  for (int i = 0; i < N; i++) v[i] = strata_malloc(48);
  void *p = v[N / 2];
  strata_free(p);
  /* Other frees, of the same class and of others, before the second. */
  for (int i = 0; i < N; i++)
    if (i != N / 2) strata_free(v[i]);
  void *o[10];
  for (int i = 0; i < 10; i++) o[i] = strata_malloc((size_t)100 << i);
  for (int i = 0; i < 10; i++) strata_free(o[i]);
  expect_addr(p);
  strata_free(hide_ptr(p));
}
static void c_double_free_small_remote_list(void) {
  /* p freed, then its neighbours, so p is deep in the free list. */
  void *v[8];
  for (int i = 0; i < 8; i++) v[i] = strata_malloc(256);
  void *p = v[0];
  for (int i = 0; i < 8; i++) strata_free(v[i]);
  expect_addr(p);
  strata_free(hide_ptr(p));
}
static void c_double_free_large(void) {
  void *keep = strata_malloc(300 * KiB); /* keep the arena alive */
  void *p = strata_malloc(300 * KiB);
  memset(p, 1, 300 * KiB);
  strata_free(p);
  expect_addr(p);
  strata_free(hide_ptr(p));
  strata_free(keep);
}
static void c_double_free_large_between(void) {
  void *p = strata_malloc(300 * KiB);
  void *a = strata_malloc(100 * KiB);
  void *b = strata_malloc(1 * MiB);
  strata_free(p);
  strata_free(a);
  strata_free(b);
  expect_addr(p);
  strata_free(hide_ptr(p));
}
static void c_double_free_huge(void) {
  void *p = strata_malloc(64 * MiB);
  memset(p, 1, 4096);
  strata_free(p);
  expect_addr(p);
  strata_free(hide_ptr(p));
}
static void c_double_free_sized(void) {
  void *p = strata_malloc(200);
  strata_free_sized(p, 200);
  expect_addr(p);
  strata_free_sized(hide_ptr(p), 200);
}
static void c_write_after_free(void) {
  /* The freed block's second word (the free key) is overwritten; the next
   * malloc of its class pops it and must not hand it out. */
  uint64_t *p = strata_malloc(64);
  strata_free(p);
  expect_addr(p);
  ((volatile uint64_t *)hide_ptr(p))[1] = 0x4141414141414141ull;
  void *q = strata_malloc(64);
  strata_free(q);
}
static void c_realloc_freed(void) {
  void *p = strata_malloc(3000);
  strata_free(p);
  expect_addr(p);
  void *q = strata_realloc(hide_ptr(p), 6000);
  (void)q;
}

/* The same through the remote path: another thread frees. */
static void *free_in_thread(void *p) {
  strata_free(p);
  return NULL;
}
static void free_from_thread(void *p) { run_in_thread(free_in_thread, p); }
static void c_double_free_remote_remote(void) {
  void *v[16];
  for (int i = 0; i < 16; i++) v[i] = strata_malloc(80);
  void *p = v[3];
  free_from_thread(p);
  expect_addr(p);
  free_from_thread(hide_ptr(p));
}
static void c_double_free_remote_local(void) {
  void *v[16];
  for (int i = 0; i < 16; i++) v[i] = strata_malloc(80);
  void *p = v[5];
  free_from_thread(p);
  expect_addr(p);
  strata_free(hide_ptr(p));
}
/* A thread that frees the pointers it is handed, one at a time, and stays
 * alive (so nothing its exit does can bring its frees to the owner). */
typedef struct {
  pthread_mutex_t m;
  pthread_cond_t c;
  void *p;
  int busy;
} freer_t;
static freer_t freer = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0};
static void *freer_main(void *arg) {
  freer_t *f = arg;
  strata_free(strata_malloc(16));       /* a thread with a heap of its own */
  pthread_mutex_lock(&f->m);
  for (;;) {
    while (!f->busy) pthread_cond_wait(&f->c, &f->m);
    strata_free(f->p);
    f->busy = 0;
    pthread_cond_broadcast(&f->c);
  }
  return NULL;
}
static void freer_free(void *p) {
  pthread_mutex_lock(&freer.m);
  freer.p = p;
  freer.busy = 1;
  pthread_cond_broadcast(&freer.c);
  while (freer.busy) pthread_cond_wait(&freer.c, &freer.m);
  pthread_mutex_unlock(&freer.m);
}
/* Start the freer and have it free one of 16 fresh 80-byte blocks: the
 * block the diagnostic must name. */
static char *freed_by_live_thread(void) {
  pthread_t t;
  if (pthread_create(&t, NULL, freer_main, &freer)) _exit(95);
  void *v[16];
  for (int i = 0; i < 16; i++) v[i] = strata_malloc(80);
  freer_free(v[5]);
  expect_addr(v[5]);
  return v[5];
}
/* Enough mallocs of the 80-byte class for the owner to take its remote
 * frees back. */
static void malloc_many_80(void) {
  for (int i = 0; i < 100000; i++) hide_ptr(strata_malloc(80));
}
static void c_double_free_remote_local_live(void) {
  /* The other thread is still alive when the owner frees p again; at the
   * latest, the owner catches it once that thread has freed more blocks. */
  char *p = freed_by_live_thread();
  strata_free(hide_ptr(p));
  for (int i = 0; i < 2000; i++) freer_free(strata_malloc(80));
  malloc_many_80();
}
static void c_write_after_remote_free(void) {
  /* The free key of a block freed by another thread is overwritten; the
   * owner catches it when it takes the remote frees back. */
  char *p = freed_by_live_thread();
  memset(hide_ptr(p) + 8, 'A', 8);
  malloc_many_80();
}
static void c_double_free_local_remote(void) {
  /* The second free comes from a thread that cannot walk the owner's lists;
   * the owner catches it when it drains its remote frees (on refill). */
  void *v[16];
  for (int i = 0; i < 16; i++) v[i] = strata_malloc(80);
  void *p = v[7];
  strata_free(p);
  expect_addr(p);
  free_from_thread(hide_ptr(p));
  for (int i = 0; i < 100000; i++) v[i % 16] = strata_malloc(80);
}
static void c_double_free_many_between(void) {
  /* Thousands of frees between the two: p's span is empty by then. */
  enum { N = 5000 };
  static void *v[N];
  for (int i = 0; i < N; i++) v[i] = strata_malloc(64);
  void *p = v[10];
  for (int i = 0; i < N; i++) strata_free(v[i]);
  expect_addr(p);
  strata_free(hide_ptr(p));
}
static void c_free_interior_remote(void) {
  char *p = strata_malloc(128);
  char *q = strata_malloc(128);
  expect_addr(p + 32);
  free_from_thread(hide_ptr(p + 32));
  strata_free(q);
}
static void c_double_free_large_remote(void) {
  void *keep = strata_malloc(300 * KiB);
  void *p = strata_malloc(300 * KiB);
  free_from_thread(p);
  expect_addr(p);
  free_from_thread(hide_ptr(p));
  strata_free(keep);
}

/* Harness self-checks: a fake diagnostic must be recognised... */
static void c_selftest_fake(void) {
  void *p = (void *)(uintptr_t)0x12345670;
  expect_addr(p);
  fprintf(stderr, "strata: free(%p): self-test of the harness\n", p);
  abort();
}

/* Copy n bytes from memory that may have been unmapped (a freed block):
 * through a pipe, which answers EFAULT instead of faulting. Unreadable
 * bytes are left as they were in dst. */
static void safe_copy(void *dst, const void *src, size_t n) {
  int fd[2];
  if (pipe(fd)) _exit(97);
  while (n) {
    size_t k = n < 4096 ? n : 4096;
    ssize_t w = write(fd[1], src, k);
    if (w <= 0) break;
    if (read(fd[0], dst, (size_t)w) != w) _exit(96);
    dst = (char *)dst + w;
    src = (const char *)src + w;
    n -= (size_t)w;
  }
  close(fd[0]);
  close(fd[1]);
}

/* ---- no false alarms ----------------------------------------------------
 * For each size, free half of a batch of blocks, copy the bytes of each
 * freed block into a live block of the same size, and free the live ones.
 * Also with the copy taken from a block freed by another size class. */
static void c_no_false_alarm(void) {
  static const size_t sizes[] = {16, 24, 48, 64, 100, 256, 1000, 4096, 20000, 32 * KiB,
                                 40 * KiB, 300 * KiB, 2 * MiB};
  enum { N = 16 };
  unsigned char copy[8 * KiB];
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    size_t cn = n < sizeof copy ? n : sizeof copy; /* the head holds any metadata */
    unsigned char *v[N];
    for (int i = 0; i < N; i++) {
      v[i] = strata_malloc(n);
      if (!v[i]) _exit(2);
      memset(v[i], 0x11 * (i + 1), n);
    }
    for (int i = 0; i < N; i += 2) {
      unsigned char *dead = v[i];
      strata_free(dead);
      /* Read what the allocator left in the freed block (it stays mapped
       * for these tiers) and plant it in a live neighbour. */
      memcpy(copy, v[i + 1], cn);
      safe_copy(copy, hide_ptr(dead), cn);
      memcpy(v[i + 1], copy, cn);
      if (n > cn) safe_copy(v[i + 1] + n - 64, (unsigned char *)hide_ptr(dead) + n - 64, 64);
    }
    for (int i = 1; i < N; i += 2) strata_free(v[i]);
    /* The allocator is still sane: allocate and free again. */
    for (int i = 0; i < N; i++) {
      v[i] = strata_malloc(n);
      if (!v[i]) _exit(3);
      memset(v[i], 0, n);
    }
    for (int i = 0; i < N; i++) strata_free(v[i]);
  }
  _exit(0);
}

/* A live block's bytes that look like a freed block's header, copied into
 * realloc'd and aligned blocks too. */
static void c_no_false_alarm_realloc(void) {
  enum { N = 32 };
  unsigned char *v[N];
  for (int i = 0; i < N; i++) v[i] = strata_malloc(128);
  unsigned char snap[128];
  strata_free(v[0]);
  memset(snap, 0, sizeof snap);
  safe_copy(snap, hide_ptr(v[0]), sizeof snap);
  for (int i = 1; i < N; i++) {
    memcpy(v[i], snap, sizeof snap);
    unsigned char *q = strata_realloc(v[i], (size_t)128 + (size_t)i * 1000);
    if (!q) _exit(2);
    memcpy(q, snap, sizeof snap);
    strata_free(q);
  }
  void *a = strata_aligned_alloc(4096, 4096);
  if (!a) _exit(3);
  memcpy(a, snap, sizeof snap);
  strata_free(a);
  _exit(0);
}

/* ---- the cases ------------------------------------------------------------ */
typedef struct {
  const char *name;
  void (*fn)(void);
  const char *call; /* expected "strata: CALL(" ; NULL = must exit 0 */
} misuse_t;

static const misuse_t misuses[] = {
    /* a fake diagnostic is recognised (a self-test of the harness) */
    {"selftest-fake-diagnostic", c_selftest_fake, "free"},
    {"free-badbeef", c_free_badbeef, "free"},
    /* free(0xbadbeef) as the first call of a process */
    {"first-call-badbeef", c_first_call_badbeef, "free"},
    /* a buddy arena's metadata canary overwritten */
    {"arena-canary", c_arena_canary, "free"},
    {"free-stack", c_free_stack, "free"},
    {"free-static", c_free_static, "free"},
    /* free of a page of a foreign mmap, and of its start */
    {"free-mmap", c_free_mmap, "free"},
    {"free-mmap-start", c_free_mmap_start, "free"},
    {"realloc-foreign", c_realloc_foreign, "realloc"},
    {"realloc-static", c_realloc_static, "realloc"},
    {"usable-size-foreign", c_usable_foreign, "malloc_usable_size"},
    /* free of the interior of a 64-byte, a 1000-byte and a 300 KiB block */
    {"free-interior-small", c_free_interior_small, "free"},
    {"free-interior-small2", c_free_interior_small2, "free"},
    {"free-interior-large", c_free_interior_large, "free"},
    {"double-free-small", c_double_free_small, "free"},
    /* other frees between the two */
    {"double-free-small-between", c_double_free_small_between, "free"},
    /* the block deep in the free list */
    {"double-free-small-deep", c_double_free_small_remote_list, "free"},
    /* the block's page given back to the OS; then after its owner exited */
    {"double-free-purged", c_double_free_purged, "free"},
    {"double-free-purged-adopted", c_double_free_purged_adopted, "free"},
    /* realloc of a freed block whose page was given back */
    {"realloc-purged", c_realloc_purged, "realloc"},
    /* write after free, found by a purge of its span */
    {"write-after-free-purge", c_write_after_free_purge, "purge"},
    /* large (300 KiB), also with other frees between, and huge (64 MiB) */
    {"double-free-large", c_double_free_large, "free"},
    {"double-free-large-between", c_double_free_large_between, "free"},
    {"double-free-huge", c_double_free_huge, "free"},
    {"double-free-sized", c_double_free_sized, "free_sized|free"},
    /* small blocks through the remote path: both frees from another thread;
     * remote then local; remote by a thread that lives on, then local; local
     * then from another thread; 5000 frees between */
    {"double-free-remote-remote", c_double_free_remote_remote, "free"},
    {"double-free-remote-local", c_double_free_remote_local, "free"},
    {"double-free-remote-local-live", c_double_free_remote_local_live, "free"},
    {"double-free-local-remote", c_double_free_local_remote, "free"},
    {"double-free-many-between", c_double_free_many_between, "free"},
    /* free of the interior of a small block from another thread */
    {"free-interior-remote", c_free_interior_remote, "free"},
    {"double-free-large-remote", c_double_free_large_remote, "free"},
    {"realloc-freed", c_realloc_freed, "realloc"},
    /* write after free, caught by the next malloc */
    {"write-after-free", c_write_after_free, "malloc"},
    {"write-after-remote-free", c_write_after_remote_free, "free"},
    /* no false alarm: freed bytes copied into live blocks, and into
     * realloc'd and aligned blocks */
    {"no-false-alarm", c_no_false_alarm, NULL},
    {"no-false-alarm-realloc", c_no_false_alarm_realloc, NULL},
};
enum { NMISUSES = sizeof misuses / sizeof misuses[0] };

/* ---- the harness -------------------------------------------------------- */
/* Does `out` hold "strata: CALL(0x<addr>" with the address equal to `want`?
 * Any hex spelling (padding, case) of the address is accepted. */
static int diagnostic_matches(const char *out, const char *calls, uintptr_t want) {
  /* `calls` may list alternatives: "free_sized|free". */
  for (const char *c = calls; *c;) {
    size_t clen = strcspn(c, "|");
    char prefix[64];
    snprintf(prefix, sizeof prefix, "strata: %.*s(", (int)clen, c);
    for (const char *s = strstr(out, prefix); s; s = strstr(s + 1, prefix)) {
      const char *h = s + strlen(prefix);
      if (h[0] == '0' && (h[1] == 'x' || h[1] == 'X')) h += 2;
      char *end;
      errno = 0;
      unsigned long long v = strtoull(h, &end, 16);
      if (end != h && errno == 0 && (uintptr_t)v == want) return 1;
    }
    c += clen;
    if (*c == '|') c++;
  }
  return 0;
}

/* In the child: the misuse, with the address pipe's write end. */
static void misuse_child(void *arg) {
  const misuse_t *m = arg;
  close(info_pipe[0]);
  info_fd = info_pipe[1];
  m->fn();
  /* The bad call returned: the misuse was not detected. */
  _exit(m->call ? 42 : 0);
}

/* Run m in a child: did it end as it must? Its stderr in err, what went
 * wrong in why. */
static bool misuse_ok(const misuse_t *m, char *err, size_t errcap, char *why, size_t whycap) {
  why[0] = 0;
  if (pipe(info_pipe)) {
    snprintf(why, whycap, "pipe: %s", strerror(errno));
    return false;
  }
  int st = run_child(misuse_child, (void *)m, NULL, 0, err, errcap, 20);
  close(info_pipe[1]);
  uintptr_t want = 0;
  ssize_t got = read(info_pipe[0], &want, sizeof want);
  close(info_pipe[0]);
  if (st < 0) {
    snprintf(why, whycap, "the child timed out or could not start (%d)", st);
    return false;
  }
  if (m->call) {
    if (got != (ssize_t)sizeof want)
      snprintf(why, whycap, "child did not reach the bad call");
    else if (WIFEXITED(st))
      snprintf(why, whycap, "child exited with status %d: misuse of %#lx not detected",
               WEXITSTATUS(st), (unsigned long)want);
    else if (WTERMSIG(st) != SIGABRT)
      snprintf(why, whycap, "child killed by signal %d (%s), expected SIGABRT", WTERMSIG(st),
               strsignal(WTERMSIG(st)));
    else if (!diagnostic_matches(err, m->call, want))
      snprintf(why, whycap, "SIGABRT, but stderr lacks \"strata: %s(%#lx)\"%s", m->call,
               (unsigned long)want, strchr(m->call, '|') ? " (either name)" : "");
    else
      return true;
  } else {
    if (WIFSIGNALED(st))
      snprintf(why, whycap, "false alarm: child killed by signal %d (%s)", WTERMSIG(st),
               strsignal(WTERMSIG(st)));
    else if (WEXITSTATUS(st) != 0)
      snprintf(why, whycap, "child exited with status %d", WEXITSTATUS(st));
    else if (strstr(err, "strata: "))
      snprintf(why, whycap, "false alarm: a diagnostic was printed");
    else
      return true;
  }
  return false;
}

static char err[1 << 16];   /* the child's stderr */

/* The case of misuses[i] (the table of cases begins with selftest-rejects). */
static int case_misuse(void) {
  const misuse_t *m = &misuses[case_index() - 1];
  char why[512];
  bool ok = misuse_ok(m, err, sizeof err, why, sizeof why);
  /* What the child (Strata) printed, at most a few lines. */
  int lines = 0;
  for (char *line = strtok(err, "\n"); line && lines < 6; line = strtok(NULL, "\n"), lines++)
    info("child stderr: %s", line);
  CHECK(ok, "%s", why);
  return 0;
}

/* The harness must reject a child that exits 0 where a diagnostic is
 * expected, and a diagnostic that names another address. */
static void c_selftest_silent(void) {
  expect_addr((void *)0x1000);
  _exit(0);
}
static void c_selftest_wrong_addr(void) {
  expect_addr((void *)0x1000);
  fprintf(stderr, "strata: free(0x2000): wrong address\n");
  abort();
}
static int case_selftest_rejects(void) {
  static const misuse_t neg[] = {
      {"selftest: silent child is a failure", c_selftest_silent, "free"},
      {"selftest: wrong address is a failure", c_selftest_wrong_addr, "free"},
  };
  char why[512];
  for (size_t i = 0; i < sizeof neg / sizeof neg[0]; i++)
    CHECK(!misuse_ok(&neg[i], err, sizeof err, why, sizeof why), "harness self-check \"%s\" passed",
          neg[i].name);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--first-call-badbeef") == 0) {
    strata_free(hide_ptr((void *)(uintptr_t)0xbadbeef));
    return 0;
  }
  case_t cases[1 + NMISUSES] = {{"selftest-rejects", case_selftest_rejects, 60}};
  for (int i = 0; i < NMISUSES; i++) cases[1 + i] = (case_t){misuses[i].name, case_misuse, 60};
  return cases_main(argc, argv, cases, 1 + NMISUSES);
}
