/* test_parity.c - behaviours glibc's malloc guarantees, checked through the
 * standard names (malloc, free, ...) of the library this is linked with.
 *
 * Each case runs in a forked child with a watchdog (testlib.h: a case that
 * crashes, aborts or hangs fails on its own):
 *
 *   test_parity            run every case
 *   test_parity NAME...    run the named cases only
 *   test_parity -l         list the cases
 *   test_parity --no-fork NAME   run one case in this process, no watchdog
 *                                (for a debugger: gdb --args ...)
 *
 * The parent allocates next to nothing, so every child starts from an almost
 * empty heap (this matters for the address-space-limit case).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <sys/prctl.h>

#include "strata.h"

#include "first_nonzero.h"
#include "testlib.h"

/* ==================================================================================
 * Case: calloc zeroes recycled memory under pressure.
 * Blocks of every tier are filled with 0xA5 and freed, then calloc asks for
 * the same sizes (so it gets the same memory back) and every byte must be 0.
 * Rounds vary how the memory came back: freed by the same thread, by another
 * thread (remote frees), after malloc_trim, and after realloc shrank and
 * regrew the blocks in place.
 * ================================================================================== */
static const size_t calloc_sizes[] = {
  1, 8, 16, 24, 48, 100, 128, 1000, 1024, 4000, 4096, 10000, 16384, 32768,   /* small */
  32769, 65536, 300000, 1 * MiB, 4 * MiB + 1, 9 * MiB, 16 * MiB,              /* large */
  16 * MiB + 1, 24 * MiB,                                                     /* huge */
};
enum { CALLOC_NSIZES = sizeof calloc_sizes / sizeof calloc_sizes[0], CALLOC_MAXN = 64 };

/* How many blocks of a size: about 1 MiB per size, 1..64 blocks. */
static size_t calloc_count(size_t size) {
  size_t n = 1 * MiB / size;
  return n < 1 ? 1 : n > CALLOC_MAXN ? CALLOC_MAXN : n;
}

typedef struct { unsigned char **v; size_t n; } free_job_t;
static void *free_all_job(void *arg) {
  free_job_t *j = arg;
  for (size_t i = 0; i < j->n; i++) free(j->v[i]);
  return NULL;
}

static int case_calloc_recycled(void) {
  static unsigned char *v[CALLOC_MAXN];
  const char *round_names[] = {"same thread", "freed by another thread", "after malloc_trim",
                               "after realloc shrink+regrow"};
  for (int round = 0; round < 4; round++) {
    double t0 = now_s();
    for (size_t si = 0; si < CALLOC_NSIZES; si++) {
      size_t size = calloc_sizes[si], n = calloc_count(size);
      for (size_t i = 0; i < n; i++) {
        v[i] = malloc(size);
        if (!v[i]) { failf("malloc(%zu) returned NULL", size); return 1; }
        memset(v[i], 0xA5, size);
        if (round == 3 && size > 64) {
          /* Shrink (the tail may be purged or split off) and grow back;
           * the regrown tail is indeterminate, so fill it all again. */
          unsigned char *q = realloc(v[i], size / 3);
          if (!q) { failf("realloc shrink returned NULL"); return 1; }
          q = realloc(q, size);
          if (!q) { failf("realloc regrow returned NULL"); return 1; }
          memset(q, 0xA5, size);
          v[i] = q;
        }
      }
      /* Free them: from another thread in round 1, else odd indices first. */
      if (round == 1) {
        free_job_t job = {v, n};
        pthread_t t;
        if (pthread_create(&t, NULL, free_all_job, &job) != 0) { failf("pthread_create"); return 1; }
        pthread_join(t, NULL);
      } else {
        for (size_t i = 1; i < n; i += 2) free(v[i]);
        for (size_t i = 0; i < n; i += 2) free(v[i]);
      }
      if (round == 2) malloc_trim(0);
      for (size_t i = 0; i < n; i++) {
        /* calloc(n, m) with both factors > 1 where the size splits. */
        v[i] = size % 8 == 0 && i % 2 ? calloc(size / 8, 8) : calloc(1, size);
        if (!v[i]) { failf("calloc(%zu) returned NULL", size); return 1; }
        size_t bad = first_nonzero(v[i], size);
        if (bad != SIZE_MAX) {
          failf("round '%s': calloc(%zu) block %zu at %p: byte %zu is 0x%02x, not 0",
                round_names[round], size, i, (void *)v[i], bad, v[i][bad]);
          return 1;
        }
      }
      for (size_t i = 0; i < n; i++) free(v[i]);
    }
    info("round '%s': %.2f s", round_names[round], now_s() - t0);
  }
  return 0;
}

/* ==================================================================================
 * Case: huge sizes with every power-of-two alignment fail cleanly.
 * aligned_alloc, memalign and posix_memalign with alignments 16 .. 2^63 and
 * sizes near SIZE_MAX or SIZE_MAX / 2 return NULL with errno ENOMEM (for
 * posix_memalign: ENOMEM returned, *out untouched). Huge alignments with a
 * small size must fail the same way or succeed with the alignment honoured.
 * ================================================================================== */
static int case_huge_alignment(void) {
  const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 15, SIZE_MAX - 16, SIZE_MAX - 4095,
                          SIZE_MAX - 4096, SIZE_MAX / 2, SIZE_MAX / 2 + 1, SIZE_MAX / 2 - 4095};
  for (unsigned shift = 4; shift <= 63; shift++) {
    size_t align = (size_t)1 << shift;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
      size_t size = sizes[k];
      errno = 0;
      void *p = aligned_alloc(align, hide(size));
      if (p || errno != ENOMEM)
        failf("aligned_alloc(2^%u, %#zx) = %p, errno %d (want NULL, ENOMEM)", shift, size, p, errno);
      errno = 0;
      p = memalign(align, hide(size));
      if (p || errno != ENOMEM)
        failf("memalign(2^%u, %#zx) = %p, errno %d (want NULL, ENOMEM)", shift, size, p, errno);
      void *out = (void *)(uintptr_t)0x5a5a5a50;
      int rc = posix_memalign(&out, align, hide(size));
      if (rc != ENOMEM || out != (void *)(uintptr_t)0x5a5a5a50)
        failf("posix_memalign(&out, 2^%u, %#zx) = %d, out %p (want ENOMEM, out untouched)", shift,
              size, rc, out);
      if (failures) return 1;
    }
  }
  /* Alignments beyond the address space with a small size. */
  int ok = 0, refused = 0;
  for (unsigned shift = 30; shift <= 63; shift++) {
    size_t align = (size_t)1 << shift;
    errno = 0;
    void *p = aligned_alloc(align, 64);
    if (!p) {
      if (errno != ENOMEM) failf("aligned_alloc(2^%u, 64) = NULL with errno %d, not ENOMEM", shift, errno);
      refused++;
      continue;
    }
    if ((uintptr_t)p % align) failf("aligned_alloc(2^%u, 64) = %p: misaligned", shift, p);
    memset(p, 1, 64);
    free(p);
    ok++;
  }
  info("aligned_alloc(2^30 .. 2^63, 64): %d served, %d refused with ENOMEM", ok, refused);
  return failures != 0;
}

/* ==================================================================================
 * Case: the aligned calls' error cases and page rounding, as glibc.
 * ================================================================================== */
static int case_memalign_errors(void) {
  /* posix_memalign: EINVAL unless a power-of-two multiple of sizeof(void *);
   * *out is untouched on failure. */
  const size_t bad[] = {0, 1, 2, 3, sizeof(void *) / 2, 12, 24, 48, 96, 4097, 3 * 4096,
                        SIZE_MAX, SIZE_MAX / 2};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void *out = (void *)(uintptr_t)0x5a5a5a50;
    int saved = errno = 1234;
    int rc = posix_memalign(&out, bad[i], 16);
    if (rc != EINVAL) failf("posix_memalign(&out, %zu, 16) returned %d, not EINVAL", bad[i], rc);
    if (out != (void *)(uintptr_t)0x5a5a5a50) failf("posix_memalign(&out, %zu, 16) changed out", bad[i]);
    if (errno != saved) info("posix_memalign(&out, %zu, 16) changed errno to %d", bad[i], errno);
  }
  /* ... and works for every valid alignment, including sizeof(void *). */
  for (size_t a = sizeof(void *); a <= 64 * MiB; a <<= 1) {
    void *out = NULL;
    int rc = posix_memalign(&out, a, 100);
    if (rc || !out || (uintptr_t)out % a) failf("posix_memalign(&out, %zu, 100) = %d, %p", a, rc, out);
    else memset(out, 1, 100);
    free(out);
  }
  /* aligned_alloc: EINVAL for 0 and non-powers of two (glibc 2.38). */
  const size_t bad_aa[] = {0, 3, 6, 12, 24, 48, 100, 4097, SIZE_MAX};
  for (size_t i = 0; i < sizeof bad_aa / sizeof bad_aa[0]; i++) {
    errno = 0;
    void *p = aligned_alloc(bad_aa[i], 10);
    if (p || errno != EINVAL)
      failf("aligned_alloc(%zu, 10) = %p, errno %d (want NULL, EINVAL)", bad_aa[i], p, errno);
    free(p);
  }
  /* aligned_alloc with 1, 2, 4, 8 (powers of two below 16): fine, 16-aligned. */
  for (size_t a = 1; a <= 8; a <<= 1) {
    void *p = aligned_alloc(a, 10);
    if (!p || (uintptr_t)p % 16) failf("aligned_alloc(%zu, 10) = %p", a, p);
    free(p);
  }
  /* memalign: a non-power-of-two alignment is rounded up to the next power. */
  const size_t odd[] = {3, 5, 17, 24, 48, 100, 1000, 3000, 4097, 5000, 12288, 100000, 3 * MiB};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    size_t want = 16;
    while (want < odd[i]) want <<= 1;
    void *p = memalign(odd[i], 10);
    if (!p || (uintptr_t)p % want) failf("memalign(%zu, 10) = %p, not aligned to %zu", odd[i], p, want);
    else memset(p, 1, 10);
    free(p);
  }
  /* memalign with alignment 0 or 1 is malloc; beyond SIZE_MAX/2 + 1: EINVAL. */
  for (size_t a = 0; a <= 1; a++) {
    void *p = memalign(a, 10);
    if (!p || (uintptr_t)p % 16) failf("memalign(%zu, 10) = %p", a, p);
    free(p);
  }
  errno = 0;
  void *p = memalign(hide(SIZE_MAX / 2 + 2), 10);
  if (p || errno != EINVAL) failf("memalign(SIZE_MAX/2 + 2, 10) = %p, errno %d (want NULL, EINVAL)", p, errno);
  /* valloc and pvalloc: page aligned; pvalloc rounds the size up to pages,
   * and pvalloc(0) gives a whole page. */
  const size_t vs[] = {0, 1, 100, 4095, 4096, 4097, 40000, 300000, 17 * MiB};
  for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
    size_t n = vs[i];
    unsigned char *v = valloc(n);
    if (!v || (uintptr_t)v % PAGE) failf("valloc(%zu) = %p, not page aligned", n, (void *)v);
    else if (malloc_usable_size(v) < n) failf("valloc(%zu): usable %zu", n, malloc_usable_size(v));
    else memset(v, 1, n);
    free(v);
    size_t rounded = n ? (n + PAGE - 1) / PAGE * PAGE : PAGE;
    v = pvalloc(n);
    if (!v || (uintptr_t)v % PAGE) {
      failf("pvalloc(%zu) = %p, not page aligned", n, (void *)v);
    } else if (malloc_usable_size(v) < rounded) {
      failf("pvalloc(%zu): usable size %zu < %zu", n, malloc_usable_size(v), rounded);
    } else {
      memset(v, 1, rounded);  /* the whole rounded size is ours */
    }
    free(v);
  }
  errno = 0;
  p = pvalloc(hide(SIZE_MAX));
  if (p || errno != ENOMEM) failf("pvalloc(SIZE_MAX) = %p, errno %d (want NULL, ENOMEM)", p, errno);
  errno = 0;
  p = valloc(hide(SIZE_MAX - PAGE));
  if (p || errno != ENOMEM) failf("valloc(SIZE_MAX - 4096) = %p, errno %d (want NULL, ENOMEM)", p, errno);
  return failures != 0;
}

/* ==================================================================================
 * Case: free preserves errno, even when munmap fails at the mapping limit.
 * Without root the limit (vm.max_map_count) cannot be lowered, so the process
 * fills it: a PROT_NONE reservation is cut into separate mappings by
 * mprotect-ing every other page until mprotect fails with ENOMEM. Before that,
 * each huge block gets a page mapped right before and right after it with
 * the same flags, so the kernel merges the three and freeing the block means
 * unmapping the middle of one mapping (a split, one more mapping): that munmap
 * must fail. Every free then runs with errno set to a sentinel, which must
 * survive. (Freed large blocks are purged with madvise, which does not fail
 * here; the point is that nothing on the free path leaks an errno.)
 * ================================================================================== */
#define ERRNO_SENTINEL 4242

/* The [start, end) of the mapping holding p, from /proc/self/maps. */
static bool mapping_of(const void *p, uintptr_t *start, uintptr_t *end) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  static char buf[1 << 16];
  size_t have = 0;
  bool found = false;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    have += (size_t)r;
    buf[have] = 0;
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = 0;
      unsigned long a, b;
      if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a <= (uintptr_t)p && (uintptr_t)p < b) {
        *start = a;
        *end = b;
        found = true;
      }
      line = nl + 1;
    }
    have = strlen(line);
    memmove(buf, line, have);
    if (found) break;
  }
  close(fd);
  return found;
}

static int case_free_errno_map_limit(void) {
  char lim[64] = "?";
  read_file("/proc/sys/vm/max_map_count", lim, sizeof lim);
  long max_maps = strtol(lim, NULL, 10);
  if (max_maps <= 0 || max_maps > 1000000) {
    info("vm.max_map_count is '%s': too big to fill, case skipped", lim);
    return 0;
  }
  enum { NHUGE = 4, NLARGE = 8, NSMALL = 3000 };
  static void *huge[NHUGE], *large[NLARGE], *small[NSMALL];
  const size_t large_sizes[NLARGE] = {40000, 300000, 1 * MiB, 2 * MiB, 9 * MiB, 9 * MiB, 12 * MiB, 100000};
  for (int i = 0; i < NHUGE; i++) {
    huge[i] = i == 3 ? aligned_alloc(64 * MiB, 1 * MiB) : malloc(20 * MiB + (size_t)i * PAGE);
    if (!huge[i]) { failf("huge malloc failed"); return 1; }
    memset(huge[i], 1, 4096);
  }
  for (int i = 0; i < NLARGE; i++) {
    large[i] = malloc(large_sizes[i]);
    if (!large[i]) { failf("malloc(%zu) failed", large_sizes[i]); return 1; }
    memset(large[i], 2, large_sizes[i]);
  }
  for (int i = 0; i < NSMALL; i++) {
    small[i] = malloc((size_t)16 << (i % 12));
    if (!small[i]) { failf("small malloc failed"); return 1; }
    memset(small[i], 3, 16);
  }
  /* Merge a foreign page onto each end of each huge block's mapping. */
  int merged = 0;
  for (int i = 0; i < NHUGE; i++) {
    uintptr_t s, e, s2, e2;
    if (!mapping_of(huge[i], &s, &e)) continue;
    const int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE;
    mmap((void *)(s - PAGE), PAGE, PROT_READ | PROT_WRITE, flags, -1, 0);
    mmap((void *)e, PAGE, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (mapping_of(huge[i], &s2, &e2) && s2 < s && e2 > e) merged++;
  }
  /* Fill the mapping count. */
  long before = map_count();
  size_t pages = 2 * (size_t)max_maps + 16;
  char *res = mmap(NULL, pages * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (res == MAP_FAILED) { failf("reservation mmap failed"); return 1; }
  size_t cuts = 0;
  for (size_t pg = 1; pg + 1 < pages; pg += 2, cuts++) {
    if (mprotect(res + pg * PAGE, PAGE, PROT_READ) != 0) {
      if (errno != ENOMEM) { failf("mprotect: errno %d", errno); return 1; }
      break;
    }
  }
  long at_limit = map_count();
  info("vm.max_map_count %ld: %ld mappings before, %ld at the limit (%zu cuts); %d huge "
       "blocks sit inside one mapping with foreign pages on both sides", max_maps, before, at_limit, cuts, merged);
  /* Free everything with errno set to a sentinel. */
  int still_mapped = 0;
  for (int i = 0; i < NHUGE; i++) {
    errno = ERRNO_SENTINEL;
    free(huge[i]);
    if (errno != ERRNO_SENTINEL) failf("free(huge block %d) changed errno to %d", i, errno);
    still_mapped += is_mapped(huge[i]);
  }
  for (int i = 0; i < NLARGE; i++) {
    errno = ERRNO_SENTINEL;
    free(large[i]);
    if (errno != ERRNO_SENTINEL) failf("free(large block of %zu) changed errno to %d", large_sizes[i], errno);
  }
  for (int i = 0; i < NSMALL; i++) {
    errno = ERRNO_SENTINEL;
    free(small[i]);
    if (errno != ERRNO_SENTINEL) { failf("free(small block %d) changed errno to %d", i, errno); break; }
  }
  errno = ERRNO_SENTINEL;
  malloc_trim(0);
  if (errno != ERRNO_SENTINEL) info("malloc_trim changed errno to %d (allowed)", errno);
  /* New allocations at the limit: NULL with ENOMEM or a block, never a crash. */
  int got = 0, enomem = 0;
  for (int i = 0; i < 8; i++) {
    errno = 0;
    void *p = malloc((size_t)(17 + i) * MiB);
    if (p) { memset(p, 1, PAGE); free(p); got++; }
    else if (errno == ENOMEM) enomem++;
    else failf("malloc at the mapping limit: NULL with errno %d", errno);
  }
  info("at the limit: %d of %d huge blocks still mapped after free (their munmap failed; "
       "glibc leaks such a block too); 8 huge mallocs: %d served, %d ENOMEM",
       still_mapped, NHUGE, got, enomem);
  /* Give the mappings back; the allocator must still work. */
  munmap(res, pages * PAGE);
  for (int i = 0; i < 100; i++) {
    void *p = malloc((size_t)1 << (i % 26));
    if (!p) { failf("malloc after the limit was lifted failed"); break; }
    memset(p, 1, 1);
    free(p);
  }
  return failures != 0;
}

/* ==================================================================================
 * Case: 100,000 short-lived threads leave memory bounded.
 * Threads are created and joined 100 at a time; each allocates a few blocks
 * (small, sometimes large), frees most, and hands one block to the thread of
 * the next batch with the same index, which frees it (a remote free into the
 * spans of an exited thread). VmRSS and the mapping count after must stay
 * within a bound of their values after a warm-up.
 * ================================================================================== */
enum { CHURN_BATCH = 100, CHURN_TOTAL = 100000, CHURN_WARMUP = 2000 };
static void *churn_handoff[CHURN_BATCH];

static void *churn_thread(void *arg) {
  uintptr_t id = (uintptr_t)arg;
  unsigned slot = (unsigned)(id % CHURN_BATCH);
  void *p[6];
  p[0] = malloc(16);
  p[1] = malloc(100 + id % 900);
  p[2] = malloc(4000);
  p[3] = calloc(1, 20000);
  p[4] = id % 16 == 0 ? malloc(100000 + id % 50000) : malloc(48);
  p[5] = realloc(malloc(24), 200);
  for (int i = 0; i < 6; i++) {
    if (!p[i]) { failf("thread %lu: allocation %d failed", (unsigned long)id, i); return NULL; }
    memset(p[i], 0x5A, 16);
  }
  free(churn_handoff[slot]);    /* allocated by an exited thread */
  churn_handoff[slot] = p[1];
  for (int i = 0; i < 6; i++)
    if (i != 1) free(p[i]);
  return NULL;
}

static bool churn(size_t from, size_t to) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * KiB);
  for (size_t base = from; base < to; base += CHURN_BATCH) {
    pthread_t t[CHURN_BATCH];
    for (size_t i = 0; i < CHURN_BATCH; i++) {
      int rc = pthread_create(&t[i], &attr, churn_thread, (void *)(uintptr_t)(base + i));
      if (rc) { failf("pthread_create (thread %zu): %s", base + i, strerror(rc)); return false; }
    }
    for (size_t i = 0; i < CHURN_BATCH; i++) pthread_join(t[i], NULL);
    if (failures) return false;
  }
  pthread_attr_destroy(&attr);
  return true;
}

static int case_thread_churn(void) {
  if (!churn(0, CHURN_WARMUP)) return 1;
  long rss0 = status_kib("VmRSS:"), maps0 = map_count();
  double t0 = now_s();
  if (!churn(CHURN_WARMUP, CHURN_WARMUP + CHURN_TOTAL)) return 1;
  double dt = now_s() - t0;
  long rss1 = status_kib("VmRSS:"), maps1 = map_count();
  for (int i = 0; i < CHURN_BATCH; i++) free(churn_handoff[i]);
  info("%d threads in %.1f s (%.0f/s); VmRSS %ld -> %ld KiB, mappings %ld -> %ld",
       CHURN_TOTAL, dt, CHURN_TOTAL / dt, rss0, rss1, maps0, maps1);
  /* Bounds: nothing may grow with the number of threads. (A few dozen more
   * mappings are fine: glibc's malloc adds arenas up to 8 per core.) */
  if (rss1 > rss0 + 16 * 1024) failf("VmRSS grew by %ld KiB over %d threads", rss1 - rss0, CHURN_TOTAL);
  if (maps1 > maps0 + 64) failf("mapping count grew by %ld over %d threads", maps1 - maps0, CHURN_TOTAL);
  return failures != 0;
}

/* ==================================================================================
 * Cases: fork from a signal handler that interrupted fork, malloc or free
 * (glibc's tst-mallocfork2). The process's own thread loops malloc/free/
 * realloc of mixed sizes, and forks a child that exits at once on one round
 * in seven; three sender processes send SIGUSR1 (about 150 a second in all);
 * the handler calls fork(), the child _exit(0)s, and the handler waits for it
 * with a time limit. glibc makes fork async-signal-safe only for
 * single-threaded processes (in a multithreaded one, a fork inside a fork
 * waits for locks its own thread holds): Strata must never make the process
 * multithreaded (its purge thread waits for a second thread of the program).
 * The child does not allocate: the interrupted malloc may have left the heap
 * half-updated (glibc's children crash on it too), see init.c.
 * A handler whose fork() never returns (a lock the interrupted malloc held)
 * shows up as the case's timeout; the shared page says where it stood.
 * ================================================================================== */
typedef struct {
  volatile sig_atomic_t in_handler_fork; /* 1 while the handler is inside fork() */
  const char *volatile interrupted;      /* the call the loop was in */
  volatile long forks, hung, crashed, signals_in_call, iterations;
} fork_shared_t;
static fork_shared_t *fsh;  /* MAP_SHARED: the parent reads it after a timeout */
static char self_exe[4096]; /* for the cases that run in a fresh process */

static void fork_handler(int sig) {
  (void)sig;
  int saved = errno;
  if (fsh->interrupted) fsh->signals_in_call++;
  fsh->in_handler_fork = 1;
  pid_t pid = fork();
  fsh->in_handler_fork = 0;
  if (pid == 0) {
    _exit(0);
  }
  if (pid > 0) {
    int st = wait_or_kill(pid, 5.0);
    if (st == -1) fsh->hung++;
    else if (st != 0) fsh->crashed++;
    fsh->forks++;
  }
  errno = saved;
}

static int fork_signal_case(void) {
  memset((void *)fsh, 0, sizeof *fsh);
  pid_t me = getpid();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = fork_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  /* No signal while the senders themselves are being forked. */
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  /* Each sender signals at random intervals of 0 to 40 ms until killed:
   * each fork makes the parent's heap copy-on-write, and on a virtual
   * machine a fork every few milliseconds slows the loop fifty-fold. About
   * 150 forks a second still find a lock-holding malloc within seconds. */
  pid_t senders[3];
  for (int i = 0; i < 3; i++) {
    senders[i] = fork();
    if (senders[i] == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      signal(SIGUSR1, SIG_IGN);
      uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
      while (kill(me, SIGUSR1) == 0) sleep_us((long)(rnd(&s) % 40000));
      _exit(0);
    }
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  enum { NOBJ = 509 };
  static void *obj[NOBJ];
  /* Loop for 2 to 6 seconds: until 50 signals have landed inside a call. */
  uint64_t s = 42;
  double t0 = now_s();
  while (now_s() < t0 + 6.0 && (now_s() < t0 + 2.0 || fsh->signals_in_call < 50)) {
    for (int k = 0; k < 64; k++) {
      unsigned slot = (unsigned)(rnd(&s) % NOBJ);
      uint64_t r = rnd(&s);
      size_t size = r % 100 < 70 ? r % 32768 : r % 100 < 98 ? 32768 + r % (256 * KiB) : 1 * MiB + r % (3 * MiB);
      if (r % 7 == 0) {
        fsh->interrupted = "fork";
        pid_t pid = fork();
        fsh->interrupted = NULL;
        if (pid == 0) _exit(0);
        if (pid < 0 || wait_or_kill(pid, 5.0) != 0) { failf("a fork of the loop failed or hung"); goto out; }
      }
      fsh->interrupted = "free";
      free(obj[slot]);
      fsh->interrupted = r & 1 ? "malloc" : "realloc";
      obj[slot] = r & 1 ? malloc(size) : realloc(NULL, size);
      fsh->interrupted = NULL;
      if (!obj[slot]) { failf("malloc(%zu) failed", size); goto out; }
      ((char *)obj[slot])[0] = 1;
      fsh->iterations++;
    }
  }
out:
  for (int i = 0; i < 3; i++) kill(senders[i], SIGKILL), waitpid(senders[i], NULL, 0);
  signal(SIGUSR1, SIG_IGN);
  for (int i = 0; i < NOBJ; i++) free(obj[i]);
  info("%ld iterations, %ld forks from the handler (%ld signals landed inside fork/malloc/free), "
       "%ld children hung, %ld crashed", fsh->iterations, fsh->forks, fsh->signals_in_call,
       fsh->hung, fsh->crashed);
  if (fsh->hung) failf("%ld forked children hung (killed after 5 s)", fsh->hung);
  if (fsh->crashed) failf("%ld forked children did not exit 0", fsh->crashed);
  if (fsh->signals_in_call < 50) info("inconclusive: fewer than 50 signals landed inside a call");
  CHECK(thread_count() == 1, "the process has %ld threads: the allocator started one of its own",
        thread_count());
  return failures != 0;
}
static int case_fork_in_signal_handler(void) { return fork_signal_case(); }

/* Fork from a signal handler that interrupted fork (glibc's tst-mallocfork):
 * a process forks a child that signals it at once, so the signal may land
 * while the parent's fork is inside the atfork handlers, holding the
 * allocator's locks; the handler forks again. The outer fork must still
 * release them all: one such process in ten used to keep them (its next
 * malloc hung). Each try is a fresh process (main(), "--refork"), as in
 * glibc's test: its fork is short, and the child's signal lands inside it. */
static void refork_handler(int sig) {
  (void)sig;
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid(pid, NULL, 0);
  errno = saved;
}

static int refork_once(void) {
  pid_t me = getpid();
  free(malloc(64));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = refork_handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGUSR2, &sa, NULL);
  pid_t pid = fork();
  if (pid == 0) {
    kill(me, SIGUSR2);
    _exit(0);
  }
  while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
  /* Calls that take locks (a first block of a class takes the page heap's):
   * they hang if the fork left one held. */
  free(malloc(3000));
  free(malloc(100 * 1024));
  malloc_trim(0);
  return pid > 0 ? 0 : 1;
}

static int case_fork_in_handler_during_fork(void) {
  long hung = 0, failed = 0;
  for (int i = 0; i < 200; i++) {
    pid_t tryer = fork();
    if (tryer == 0) {
      execl(self_exe, self_exe, "--refork", (char *)NULL);
      _exit(2);
    }
    int st = tryer > 0 ? wait_or_kill(tryer, 2.0) : 1;
    if (st == -1) hung++;
    else if (st != 0) failed++;
  }
  info("200 processes: %ld hung after the fork, %ld failed", hung, failed);
  if (hung) failf("%ld processes hung in malloc after a fork interrupted by a forking handler", hung);
  if (failed) failf("%ld processes did not exit 0", failed);
  return failures != 0;
}

/* ==================================================================================
 * Case: other libraries' atfork handlers that allocate.
 * pthread_atfork handlers malloc and free (every tier) in prepare, parent and
 * child, while three threads keep allocating; the main thread forks 50
 * times, and each child allocates across the tiers, starts a thread that does
 * too, and exits 0. Run once with the handlers registered after the
 * allocator's first use, and once (in a fresh exec of this program) with them
 * registered first thing in main.
 * ================================================================================== */
static atomic_long atfork_calls[3];
static atomic_bool atfork_stop;

static void alloc_tiers_once(void) {
  static const size_t sz[] = {24, 1000, 20000, 100000, 3 * MiB, 20 * MiB};
  void *p[6];
  for (int i = 0; i < 6; i++) {
    p[i] = i % 2 && sz[i] < MiB ? calloc(1, sz[i]) : malloc(sz[i]);
    if (!p[i]) { failf("malloc(%zu) failed in an atfork handler or child", sz[i]); _exit(5); }
    memset(p[i], 7, sz[i] < 64 ? sz[i] : 64);
  }
  p[0] = realloc(p[0], 5000);
  for (int i = 0; i < 6; i++) free(p[i]);
}
static void atfork_prepare(void) { alloc_tiers_once(); atfork_calls[0]++; }
static void atfork_parent(void) { alloc_tiers_once(); atfork_calls[1]++; }
static void atfork_child(void) { alloc_tiers_once(); atfork_calls[2]++; }

static void *atfork_busy(void *arg) {
  uint64_t s = (uintptr_t)arg;
  void *keep[32] = {0};
  for (unsigned long n = 1; !atomic_load(&atfork_stop); n++) {
    /* A pause now and then: without one, glibc's fork can wait seconds
     * for its arena locks against three threads that never let go. */
    if (n % 256 == 0) sleep_us(100);
    unsigned k = (unsigned)(rnd(&s) % 32);
    free(keep[k]);
    uint64_t r = rnd(&s);
    keep[k] = malloc(r % 8 ? r % 4000 : r % (256 * KiB));
  }
  for (int k = 0; k < 32; k++) free(keep[k]);
  return NULL;
}

static void *child_thread(void *arg) {
  (void)arg;
  alloc_tiers_once();
  return NULL;
}

static int atfork_forks(void) {
  pthread_t busy[3];
  for (int i = 0; i < 3; i++) pthread_create(&busy[i], NULL, atfork_busy, (void *)(uintptr_t)(i + 7));
  int hung = 0, bad = 0;
  const int forks = 50;
  for (int i = 0; i < forks; i++) {
    pid_t pid = fork();
    if (pid < 0) { failf("fork: %s", strerror(errno)); break; }
    if (pid == 0) {
      if (atfork_calls[2] != 1) _exit(6);
      alloc_tiers_once();
      pthread_t t;
      if (pthread_create(&t, NULL, child_thread, NULL) != 0) _exit(7);
      pthread_join(t, NULL);
      _exit(0);
    }
    int st = wait_or_kill(pid, 10.0);
    if (st == -1) hung++;
    else if (st != 0) {
      if (bad++ < 3)
        failf("fork %d: child %s %d", i, WIFEXITED(st) ? "exited with" : "killed by signal",
              WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    }
  }
  atomic_store(&atfork_stop, true);
  for (int i = 0; i < 3; i++) pthread_join(busy[i], NULL);
  info("%d forks: prepare ran %ld times, parent %ld; %d children hung, %d failed", forks,
       atfork_calls[0], atfork_calls[1], hung, bad);
  if (hung) failf("%d children hung (killed after 10 s)", hung);
  if (atfork_calls[0] != forks || atfork_calls[1] != forks)
    failf("handlers ran %ld/%ld times, not %d", atfork_calls[0], atfork_calls[1], forks);
  return failures != 0;
}

static int case_atfork_allocating_handlers(void) {
  free(malloc(1));  /* the allocator is set up (and its handlers registered) */
  if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
    failf("pthread_atfork failed");
    return 1;
  }
  return atfork_forks();
}

static int case_atfork_registered_early(void) {
  /* A fresh process: see main(), "--atfork-early". */
  fflush(stdout);
  execl(self_exe, self_exe, "--atfork-early", (char *)NULL);
  failf("exec %s: %s", self_exe, strerror(errno));
  return 1;
}

/* ==================================================================================
 * Case: allocation under a 200 MiB address-space limit, from 9 threads.
 * RLIMIT_AS is lowered in the child (its threads were created before, with
 * small stacks). Each thread allocates blocks of every tier with every call
 * until its allocations fail, frees some, and goes on, for several rounds.
 * Every failure must be NULL with ENOMEM (posix_memalign: ENOMEM returned);
 * nothing may abort or crash; every block is aligned to 16 (and to the
 * requested alignment) and written to (all of it up to 64 KiB, else both
 * ends); calloc blocks are zero.
 * ================================================================================== */
enum { AS_THREADS = 9, AS_LIVE = 256 };
static atomic_long as_ok, as_fail, as_ok_by_tier[3];
static pthread_barrier_t as_barrier;

static void *as_thread(void *arg) {
  uint64_t s = 0x1234567 + (uintptr_t)arg * 7919;
  static __thread void *live[AS_LIVE];
  pthread_barrier_wait(&as_barrier);
  for (int round = 0; round < 3; round++) {
    int n = 0, fails_in_row = 0;
    while (n < AS_LIVE && fails_in_row < 20) {
      uint64_t r = rnd(&s);
      int tier = r % 100 < 65 ? 0 : r % 100 < 95 ? 1 : 2;
      size_t size = tier == 0 ? r % (32 * KiB) : tier == 1 ? 32 * KiB + r % (512 * KiB) : 17 * MiB + r % (16 * MiB);
      size_t align = 16;
      int call = (int)((r >> 20) % 6);
      void *p = NULL;
      int err;
      errno = 0;
      switch (call) {
      case 0: p = malloc(size); err = errno; break;
      case 1: p = calloc(1, size); err = errno; break;
      case 2: p = realloc(NULL, size); err = errno; break;
      case 3: align = (size_t)16 << (r >> 30) % 16; p = aligned_alloc(align, size); err = errno; break;
      case 4: align = (size_t)16 << (r >> 30) % 16; p = memalign(align, size); err = errno; break;
      default: {
        align = (size_t)8 << (r >> 30) % 17;
        err = posix_memalign(&p, align, size);
        if (err) p = NULL;
        break;
      }
      }
      if (!p) {
        if (err != ENOMEM) failf("call %d(size %zu, align %zu) = NULL with error %d, not ENOMEM", call, size, align, err);
        as_fail++;
        fails_in_row++;
        continue;
      }
      fails_in_row = 0;
      size_t want = align < 16 ? 16 : align;
      if ((uintptr_t)p % want) failf("call %d(size %zu, align %zu) = %p: misaligned", call, size, align, p);
      if (call == 1 && first_nonzero(p, size) != SIZE_MAX) failf("calloc(1, %zu) not zeroed", size);
      /* Write it: all of a block up to 64 KiB, else its first and last 32 KiB
       * (every page of a fresh mapping costs a fault: tens of microseconds
       * on a virtual machine). */
      if (size <= 64 * KiB) {
        memset(p, 0x3C, size);
      } else {
        memset(p, 0x3C, 32 * KiB);
        memset((char *)p + size - 32 * KiB, 0x3C, 32 * KiB);
      }
      as_ok++;
      as_ok_by_tier[tier]++;
      live[n++] = p;
      if (r % 3 == 0) {          /* free one now and then: churn under the limit */
        int k = (int)(rnd(&s) % (uint64_t)n);
        free(live[k]);
        live[k] = live[--n];
      }
    }
    for (int k = 0; k < n; k++) free(live[k]);
  }
  return NULL;
}

static int case_rlimit_as(void) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * KiB);
  pthread_barrier_init(&as_barrier, NULL, AS_THREADS + 1);
  pthread_t t[AS_THREADS];
  for (int i = 0; i < AS_THREADS; i++)
    if (pthread_create(&t[i], &attr, as_thread, (void *)(uintptr_t)i) != 0) { failf("pthread_create"); return 1; }
  long vm = status_kib("VmSize:");
  struct rlimit old, rl;
  getrlimit(RLIMIT_AS, &old);
  rl = old;
  rl.rlim_cur = 200 * MiB;
  if (setrlimit(RLIMIT_AS, &rl) != 0) { failf("setrlimit: %s", strerror(errno)); return 1; }
  double t0 = now_s();
  pthread_barrier_wait(&as_barrier);
  for (int i = 0; i < AS_THREADS; i++) pthread_join(t[i], NULL);
  info("VmSize at start %ld KiB; %ld blocks served (small %ld, large %ld, huge %ld), %ld "
       "refused with ENOMEM, in %.1f s", vm, as_ok, as_ok_by_tier[0], as_ok_by_tier[1],
       as_ok_by_tier[2], as_fail, now_s() - t0);
  if (as_fail == 0) failf("the limit was never reached");
  if (as_ok_by_tier[0] == 0 || as_ok_by_tier[1] == 0) failf("a tier never succeeded under the limit");
  /* Still sane after the limit is lifted. */
  setrlimit(RLIMIT_AS, &old);
  for (int i = 0; i < 26; i++) {
    void *p = malloc((size_t)1 << i);
    if (!p) { failf("malloc(2^%d) failed after the limit was lifted", i); break; }
    memset(p, 1, (size_t)1 << i);
    free(p);
  }
  return failures != 0;
}

/* ==================================================================================
 * Case: the statistics printers are not cancellation points (glibc's
 * tst-malloc-stats-cancellation). A thread with a cancellation request
 * pending calls malloc_stats, malloc_info and strata_stats_print: each
 * writes its whole output (to a pipe: writes to a pipe act on a pending
 * cancellation, writes to a memory stream do not) and leaves the thread's
 * cancellation state as it was, so the next cancellation point ends the
 * thread.
 * ================================================================================== */
static pthread_barrier_t cancel_gate;
static int cancel_pipe[2];
static atomic_int cancel_stage;
static void *cancel_thread(void *arg) {
  (void)arg;
  pthread_barrier_wait(&cancel_gate);   /* not a cancellation point */
  malloc_stats();                       /* on fd 2, the pipe */
  atomic_store(&cancel_stage, 1);
  FILE *f = fdopen(dup(cancel_pipe[1]), "w");
  if (f) {
    malloc_info(0, f);
    atomic_store(&cancel_stage, 2);
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    fclose(f);
    pthread_setcancelstate(old, NULL);
  }
  strata_stats_print(cancel_pipe[1]);
  atomic_store(&cancel_stage, 3);
  int state;
  pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &state);
  if (state != PTHREAD_CANCEL_ENABLE) failf("a printer left cancellation disabled");
  pthread_testcancel();
  atomic_store(&cancel_stage, 4);       /* not reached */
  return NULL;
}

static void *cancel_reader(void *arg) {
  static char buf[1 << 16];
  size_t n = 0;
  ssize_t r;
  while ((r = read(cancel_pipe[0], buf + n, sizeof buf - 1 - n)) > 0 || (r < 0 && errno == EINTR))
    if (r > 0) n += (size_t)r;
  buf[n] = 0;
  *(char **)arg = buf;
  return NULL;
}

static int case_printers_not_cancellation_points(void) {
  if (pipe(cancel_pipe) != 0) return failf("pipe: %s", strerror(errno)), 1;
  int saved_err = dup(2);
  dup2(cancel_pipe[1], 2);
  char *out = NULL;
  pthread_t reader, t;
  pthread_create(&reader, NULL, cancel_reader, &out);
  pthread_barrier_init(&cancel_gate, NULL, 2);
  pthread_create(&t, NULL, cancel_thread, NULL);
  pthread_cancel(t);
  pthread_barrier_wait(&cancel_gate);
  void *ret = NULL;
  pthread_join(t, &ret);
  dup2(saved_err, 2);
  close(saved_err);
  close(cancel_pipe[1]);
  pthread_join(reader, NULL);
  int stage = atomic_load(&cancel_stage);
  CHECK(ret == PTHREAD_CANCELED, "the thread was not cancelled at its cancellation point");
  CHECK(stage == 3, "cancelled in printer %d (1 malloc_stats, 2 malloc_info, 3 strata_stats_print)", stage + 1);
  const char *need[] = {"Total (incl. mmap):", "max mmap bytes", "</malloc>", "strata statistics"};
  for (int i = 0; i < 4; i++)
    CHECK(out && strstr(out, need[i]), "the output lacks \"%s\"", need[i]);
  CHECK(out && strstr(out, "</malloc>") && strstr(strstr(out, "</malloc>"), "strata statistics"),
        "strata_stats_print's table is missing after malloc_info's");
  return failures != 0;
}

/* ==================================================================================
 * The cases.
 * ================================================================================== */
static const case_t cases[] = {
  {"calloc-recycled", case_calloc_recycled, 60},
  {"huge-size-every-alignment", case_huge_alignment, 30},
  {"aligned-calls-errors", case_memalign_errors, 30},
  {"free-errno-at-map-limit", case_free_errno_map_limit, 60},
  {"thread-churn-100k", case_thread_churn, 120},
  {"fork-in-signal-handler", case_fork_in_signal_handler, 20},
  {"fork-in-handler-during-fork", case_fork_in_handler_during_fork, 60},
  {"atfork-handlers-allocate", case_atfork_allocating_handlers, 30},
  {"atfork-handlers-registered-early", case_atfork_registered_early, 20},
  {"rlimit-as-200m-9-threads", case_rlimit_as, 60},
  {"printers-not-cancellation-points", case_printers_not_cancellation_points, 20},
};

/* A case that timed out inside the forking signal handler says where. */
static void note_handler_fork(char *buf, size_t len) {
  if (fsh->in_handler_fork)
    snprintf(buf, len, "; stuck in fork() inside the signal handler, which interrupted %s",
             fsh->interrupted ? (const char *)fsh->interrupted : "no call");
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--refork") == 0) _exit(refork_once());
  if (argc > 1 && strcmp(argv[1], "--atfork-early") == 0) {
    /* The exec'd half of atfork-handlers-registered-early: register before
     * anything in this program allocates. */
    if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) {
      failf("pthread_atfork failed");
      _exit(1);
    }
    int rc = atfork_forks();
    fflush(stdout);
    _exit(rc || atomic_load(&failures) ? 1 : 0);
  }
  ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
  if (n > 0) self_exe[n] = 0;
  fsh = mmap(NULL, sizeof *fsh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (fsh == MAP_FAILED) return 2;
  case_timeout_note = note_handler_fork;
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
