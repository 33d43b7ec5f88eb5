/* test_misuse.c - misuse is detected: one line on stderr, then abort.
 *
 * Each case runs in a forked child whose stderr goes to a pipe. The child
 * sends the address it is about to misuse through a second pipe, then does
 * the bad call. The case passes when the child dies by SIGABRT and its
 * stderr holds "strata: CALL(" followed by that address (in hex). The exact
 * wording after it is not checked.
 *
 * The last cases must not abort: copying the bytes of freed blocks (free-list
 * links, canaries, whatever the allocator keeps there) into live blocks and
 * freeing those is legitimate.
 *
 * Uses the strata_* API only. Some cases free from a second thread, to go
 * through the remote-free path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strata.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static int info_fd = -1; /* child's end of the address pipe */

/* Keep the compiler from reasoning about pointers we misuse on purpose. */
static inline void *hide(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

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
  strata_free(hide(p));
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
  strata_free(hide(p));
}
static void c_free_stack(void) {
  char buf[256] __attribute__((aligned(64)));
  memset(buf, 0, sizeof buf);
  expect_addr(buf + 64);
  strata_free(hide(buf + 64));
}
static void c_free_static(void) {
  expect_addr(static_array);
  strata_free(hide(static_array));
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
  strata_free(hide(m + 4096));
}
static void c_free_mmap_start(void) {
  char *m = foreign_page();
  expect_addr(m);
  strata_free(hide(m));
}
static void c_realloc_foreign(void) {
  char *m = foreign_page();
  expect_addr(m + 64);
  void *q = strata_realloc(hide(m + 64), 100);
  (void)q;
}
static void c_realloc_static(void) {
  expect_addr(static_array);
  void *q = strata_realloc(hide(static_array), 1000);
  (void)q;
}
static void c_usable_foreign(void) {
  char *m = foreign_page();
  expect_addr(m + 128);
  volatile size_t u = strata_malloc_usable_size(hide(m + 128));
  (void)u;
}
static void c_free_interior_small(void) {
  char *p = strata_malloc(64);
  char *q = strata_malloc(64); /* keep the span busy */
  expect_addr(p + 16);
  strata_free(hide(p + 16));
  strata_free(q);
}
static void c_free_interior_small2(void) {
  char *p = strata_malloc(1000);
  expect_addr(p + 512);
  strata_free(hide(p + 512));
}
static void c_free_interior_large(void) {
  char *p = strata_malloc(300 * KiB);
  expect_addr(p + 64 * KiB);
  strata_free(hide(p + 64 * KiB));
}
static void c_double_free_small(void) {
  void *p = strata_malloc(48);
  strata_free(p);
  expect_addr(p);
  strata_free(hide(p));
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
  strata_free(hide(purged_blocks[4]));
}
/* realloc to a size that would keep the block in place. */
static void realloc_purged(void) {
  expect_addr(purged_blocks[4]);
  void *q = strata_realloc(hide(purged_blocks[4]), 1990);
  (void)q;
}
/* A write after free into block 1, which stays on its span's free list (its
 * page holds the live block 0), found by the next purge's walk of that list. */
static void write_after_free_purge(void) {
  expect_addr(purged_blocks[1]);
  memset(hide(purged_blocks[1]), 0x41, 16);
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
  strata_free(hide(p));
}
static void c_double_free_small_remote_list(void) {
  /* p freed, then its neighbours, so p is deep in the free list. */
  void *v[8];
  for (int i = 0; i < 8; i++) v[i] = strata_malloc(256);
  void *p = v[0];
  for (int i = 0; i < 8; i++) strata_free(v[i]);
  expect_addr(p);
  strata_free(hide(p));
}
static void c_double_free_large(void) {
  void *keep = strata_malloc(300 * KiB); /* keep the arena alive */
  void *p = strata_malloc(300 * KiB);
  memset(p, 1, 300 * KiB);
  strata_free(p);
  expect_addr(p);
  strata_free(hide(p));
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
  strata_free(hide(p));
}
static void c_double_free_huge(void) {
  void *p = strata_malloc(64 * MiB);
  memset(p, 1, 4096);
  strata_free(p);
  expect_addr(p);
  strata_free(hide(p));
}
static void c_double_free_sized(void) {
  void *p = strata_malloc(200);
  strata_free_sized(p, 200);
  expect_addr(p);
  strata_free_sized(hide(p), 200);
}
static void c_write_after_free(void) {
  /* The freed block's second word (the free key) is overwritten; the next
   * malloc of its class pops it and must not hand it out. */
  uint64_t *p = strata_malloc(64);
  strata_free(p);
  expect_addr(p);
  ((volatile uint64_t *)hide(p))[1] = 0x4141414141414141ull;
  void *q = strata_malloc(64);
  strata_free(q);
}
static void c_realloc_freed(void) {
  void *p = strata_malloc(3000);
  strata_free(p);
  expect_addr(p);
  void *q = strata_realloc(hide(p), 6000);
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
  free_from_thread(hide(p));
}
static void c_double_free_remote_local(void) {
  void *v[16];
  for (int i = 0; i < 16; i++) v[i] = strata_malloc(80);
  void *p = v[5];
  free_from_thread(p);
  expect_addr(p);
  strata_free(hide(p));
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
  for (int i = 0; i < 100000; i++) hide(strata_malloc(80));
}
static void c_double_free_remote_local_live(void) {
  /* The other thread is still alive when the owner frees p again; at the
   * latest, the owner catches it once that thread has freed more blocks. */
  char *p = freed_by_live_thread();
  strata_free(hide(p));
  for (int i = 0; i < 2000; i++) freer_free(strata_malloc(80));
  malloc_many_80();
}
static void c_write_after_remote_free(void) {
  /* The free key of a block freed by another thread is overwritten; the
   * owner catches it when it takes the remote frees back. */
  char *p = freed_by_live_thread();
  memset(hide(p) + 8, 'A', 8);
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
  free_from_thread(hide(p));
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
  strata_free(hide(p));
}
static void c_free_interior_remote(void) {
  char *p = strata_malloc(128);
  char *q = strata_malloc(128);
  expect_addr(p + 32);
  free_from_thread(hide(p + 32));
  strata_free(q);
}
static void c_double_free_large_remote(void) {
  void *keep = strata_malloc(300 * KiB);
  void *p = strata_malloc(300 * KiB);
  free_from_thread(p);
  expect_addr(p);
  free_from_thread(hide(p));
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
      safe_copy(copy, hide(dead), cn);
      memcpy(v[i + 1], copy, cn);
      if (n > cn) safe_copy(v[i + 1] + n - 64, (unsigned char *)hide(dead) + n - 64, 64);
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
  safe_copy(snap, hide(v[0]), sizeof snap);
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

/* ---- the harness -------------------------------------------------------- */
typedef struct {
  const char *name;
  void (*fn)(void);
  const char *call; /* expected "strata: CALL(" ; NULL = must exit 0 */
} case_t;

static const case_t cases[] = {
    {"selftest: fake diagnostic", c_selftest_fake, "free"},
    {"free(0xbadbeef)", c_free_badbeef, "free"},
    {"free(0xbadbeef) as the first call of a process", c_first_call_badbeef, "free"},
    {"buddy arena metadata canary overwritten", c_arena_canary, "free"},
    {"free(stack address)", c_free_stack, "free"},
    {"free(static array)", c_free_static, "free"},
    {"free(foreign mmap page)", c_free_mmap, "free"},
    {"free(start of foreign mmap)", c_free_mmap_start, "free"},
    {"realloc(foreign pointer)", c_realloc_foreign, "realloc"},
    {"realloc(static array)", c_realloc_static, "realloc"},
    {"malloc_usable_size(foreign pointer)", c_usable_foreign, "malloc_usable_size"},
    {"free(interior of 64-byte block)", c_free_interior_small, "free"},
    {"free(interior of 1000-byte block)", c_free_interior_small2, "free"},
    {"free(interior of 300 KiB block)", c_free_interior_large, "free"},
    {"double free (small)", c_double_free_small, "free"},
    {"double free (small, other frees between)", c_double_free_small_between, "free"},
    {"double free (small, deep in the free list)", c_double_free_small_remote_list, "free"},
    {"double free (small, its page given back to the OS)", c_double_free_purged, "free"},
    {"double free (small, page given back, owner exited)", c_double_free_purged_adopted, "free"},
    {"realloc of a freed block whose page was given back", c_realloc_purged, "realloc"},
    {"write after free, found by a purge of its span", c_write_after_free_purge, "purge"},
    {"double free (large, 300 KiB)", c_double_free_large, "free"},
    {"double free (large, other frees between)", c_double_free_large_between, "free"},
    {"double free (huge, 64 MiB)", c_double_free_huge, "free"},
    {"double free_sized (small)", c_double_free_sized, "free_sized|free"},
    {"double free (small, both frees from another thread)", c_double_free_remote_remote, "free"},
    {"double free (small, remote then local)", c_double_free_remote_local, "free"},
    {"double free (small, remote by a thread that lives on, then local)", c_double_free_remote_local_live, "free"},
    {"double free (small, local then from another thread)", c_double_free_local_remote, "free"},
    {"double free (small, 5000 frees between)", c_double_free_many_between, "free"},
    {"free(interior of small block) from another thread", c_free_interior_remote, "free"},
    {"double free (large, from another thread)", c_double_free_large_remote, "free"},
    {"realloc of a freed block", c_realloc_freed, "realloc"},
    {"write after free, caught by the next malloc", c_write_after_free, "malloc"},
    {"write after a free by another thread", c_write_after_remote_free, "free"},
    {"no false alarm: freed bytes copied into live blocks", c_no_false_alarm, NULL},
    {"no false alarm: freed bytes in realloc'd/aligned blocks", c_no_false_alarm_realloc, NULL},
};

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

static int run_case(const case_t *c, int expect_pass, int verbose) {
  int errp[2], infop[2];
  if (pipe(errp) || pipe(infop)) {
    perror("pipe");
    return 0;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 0;
  }
  if (pid == 0) {
    /* No core dumps, no hang. */
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    prctl(PR_SET_DUMPABLE, 0);
    alarm(20);
    close(errp[0]);
    close(infop[0]);
    dup2(errp[1], 2);
    close(errp[1]);
    info_fd = infop[1];
    c->fn();
    /* The bad call returned: the misuse was not detected. */
    _exit(c->call ? 42 : 0);
  }
  close(errp[1]);
  close(infop[1]);
  /* Read everything the child writes on stderr (until it exits). */
  size_t cap = 4096, len = 0;
  char *out = malloc(cap);
  for (;;) {
    if (len + 1 >= cap) out = realloc(out, cap *= 2);
    ssize_t r = read(errp[0], out + len, cap - len - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  out[len] = 0;
  close(errp[0]);
  uintptr_t want = 0;
  ssize_t got = read(infop[0], &want, sizeof want);
  close(infop[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }

  char why[512] = "";
  int ok;
  if (c->call) {
    if (got != (ssize_t)sizeof want) {
      snprintf(why, sizeof why, "child did not reach the bad call");
      ok = 0;
    } else if (WIFEXITED(st)) {
      snprintf(why, sizeof why, "child exited with status %d: misuse of %#lx not detected",
               WEXITSTATUS(st), (unsigned long)want);
      ok = 0;
    } else if (WTERMSIG(st) != SIGABRT) {
      snprintf(why, sizeof why, "child killed by signal %d (%s), expected SIGABRT",
               WTERMSIG(st), strsignal(WTERMSIG(st)));
      ok = 0;
    } else if (!diagnostic_matches(out, c->call, want)) {
      snprintf(why, sizeof why, "SIGABRT, but stderr lacks \"strata: %s(%#lx)\"%s", c->call,
               (unsigned long)want, strchr(c->call, '|') ? " (either name)" : "");
      ok = 0;
    } else {
      ok = 1;
    }
  } else {
    if (WIFSIGNALED(st)) {
      snprintf(why, sizeof why, "false alarm: child killed by signal %d (%s)", WTERMSIG(st),
               strsignal(WTERMSIG(st)));
      ok = 0;
    } else if (WEXITSTATUS(st) != 0) {
      snprintf(why, sizeof why, "child exited with status %d", WEXITSTATUS(st));
      ok = 0;
    } else if (strstr(out, "strata: ")) {
      snprintf(why, sizeof why, "false alarm: a diagnostic was printed");
      ok = 0;
    } else {
      ok = 1;
    }
  }
  int pass = ok == expect_pass;
  if (verbose || !pass) {
    printf("%s: %s%s%s\n", pass ? "PASS" : "FAIL", c->name, why[0] ? " - " : "", why);
    if (len) {
      /* Show the child's stderr (with -v: what Strata printed), indented,
       * at most a few lines. */
      printf("    child stderr: ");
      int lines = 0;
      for (char *s = out; *s && lines < 6; s++) {
        putchar(*s);
        if (*s == '\n' && s[1]) {
          printf("                  ");
          lines++;
        }
      }
      if (out[len - 1] != '\n') putchar('\n');
    }
  }
  free(out);
  return pass;
}

/* A case that exits 0 where a diagnostic is expected must be reported. */
static void c_selftest_silent(void) {
  expect_addr((void *)0x1000);
  _exit(0);
}
static void c_selftest_wrong_addr(void) {
  expect_addr((void *)0x1000);
  fprintf(stderr, "strata: free(0x2000): wrong address\n");
  abort();
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--first-call-badbeef") == 0) {
    strata_free(hide((void *)(uintptr_t)0xbadbeef));
    return 0;
  }
  int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
  const char *only = argc > 1 && !verbose ? argv[1] : NULL;
  int failed = 0, n = 0;

  /* The harness must reject these two. */
  static const case_t neg[] = {
      {"selftest: silent child is a failure", c_selftest_silent, "free"},
      {"selftest: wrong address is a failure", c_selftest_wrong_addr, "free"},
  };
  for (size_t i = 0; i < sizeof neg / sizeof neg[0]; i++)
    if (!run_case(&neg[i], 0, 0)) {
      printf("FAIL: harness self-check \"%s\"\n", neg[i].name);
      failed++;
    }

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    if (only && !strstr(cases[i].name, only)) continue;
    n++;
    if (!run_case(&cases[i], 1, 1)) failed++;
  }
  printf("test_misuse: %d case(s), %d failed\n", n, failed);
  return failed ? 1 : 0;
}
