/* test_harden.c - the optional hardening (STRATA_OPTIONS=guard=1,junk=1,
 * canary=1): each misuse below, in a child process, must die the expected
 * way; normal use must not (guard pages around huge blocks and freed large
 * ones, junk, canaries). The program re-executes itself with the options
 * set, so they are read at Strata's first allocation. Uses the strata_ API
 * (it runs in every build). */
#define _GNU_SOURCE
#include "strata.h"
#include "testlib.h"

#define OPTIONS "guard=1,junk=1,canary=1"

/* The overflows flip the byte past the request: a fixed value would match
 * the canary's byte one time in 256, and go unseen. */
static void overflow_one_byte(void) {
  char *p = strata_malloc(24);
  p[24] ^= 0x5a;                        /* one byte past the request */
  strata_free(p);
}
static void overflow_in_realloc(void) {
  char *p = strata_malloc(100);
  memset(p, 1, 100);
  p[100] ^= 0x5a;
  p = strata_realloc(p, 200);           /* the move frees the old block */
  strata_free(p);
}
static void huge_overrun(void) {
  size_t n = (size_t)20 << 20;
  char *p = strata_malloc(n);
  size_t usable = strata_malloc_usable_size(p);
  ((volatile char *)p)[usable] = 1;     /* the guard page after the block */
}
static void huge_underrun(void) {
  char *p = strata_malloc((size_t)20 << 20);
  ((volatile char *)p)[-1] = 1;         /* the guard page before the block */
}
/* A freed large block stays mapped for reuse; guard=1 makes its pages
 * inaccessible until a malloc hands them out again, so a write after free
 * faults (as under glibc, which unmaps such a block) instead of landing in
 * the next owner's block. */
static void large_use_after_free(void) {
  char *p = strata_malloc(256 << 10);
  p[0] = 1;
  strata_free(p);
  ((volatile char *)p)[100] = 1;
}
/* Only the usable pages of a large block are accessible: a write past them,
 * into the rest of its power-of-two block, faults. */
static void large_overrun(void) {
  char *p = strata_malloc(300 << 10);   /* 75 pages in a block of 128 */
  size_t usable = strata_malloc_usable_size(p);
  memset(p, 1, usable);
  ((volatile char *)p)[usable] = 1;
}
/* The same pages serve again after the free. */
static void large_reuse(void) {
  for (int i = 0; i < 100; i++) {
    char *p = strata_malloc((size_t)(64 + i) << 10);
    memset(p, i, (size_t)(64 + i) << 10);
    p = strata_realloc(p, (size_t)(64 + 2 * i) << 10);   /* in place when it can */
    memset(p, i, (size_t)(64 + 2 * i) << 10);
    strata_free(p);
  }
}
static void normal_use(void) {
  void *v[4000];
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 4000; i++) {
      size_t size = (size_t)(i * 7919 % 40000) + 1;
      v[i] = i % 3 ? strata_malloc(size) : strata_calloc(1, size);
      if (!v[i] || strata_malloc_usable_size(v[i]) < size) _exit(3);
      memset(v[i], i, size);
    }
    for (int i = 0; i < 4000; i += 2) v[i] = strata_realloc(v[i], (size_t)i * 3 + 5);
    for (int i = 0; i < 4000; i++) strata_free(v[i]);
  }
  void *h = strata_malloc((size_t)30 << 20);
  memset(h, 1, (size_t)30 << 20);
  strata_free(h);
}

/* What the options do to live blocks. */
static int case_live_blocks(void) {
  char *p = strata_malloc(40);
  CHECK(strata_malloc_usable_size(p) == 40, "usable size %zu, not the request", strata_malloc_usable_size(p));
  for (int i = 0; i < 40; i++)
    if ((unsigned char)p[i] != 0xaa) { failf("new block not junk-filled"); break; }
  strata_free(p);
  for (int i = 16; i < 40; i++)          /* the freed block: past its two link words */
    if ((unsigned char)p[i] != 0xdf) { failf("freed block not junk-filled"); break; }
  char *z = strata_calloc(10, 10);
  for (int i = 0; i < 100; i++)
    if (z[i]) { failf("calloc not zero under junk"); break; }
  strata_free(z);
  return 0;
}

/* Each misuse, run in a child, must end by signal `sig` (0: exit 0), and
 * when `message` is set its stderr must contain it. */
typedef struct {
  const char *name;
  void (*fn)(void);
  int sig;
  const char *message;
} death_t;
static const death_t deaths[] = {
  /* one-byte overflow of a small block */
  {"overflow-small", overflow_one_byte, SIGABRT, "strata: free("},
  /* overflow found when realloc moves the block */
  {"overflow-found-by-realloc", overflow_in_realloc, SIGABRT, "heap overflow"},
  /* write past a huge block (guard page) */
  {"huge-overrun", huge_overrun, SIGSEGV, NULL},
  /* write before a huge block (guard page) */
  {"huge-underrun", huge_underrun, SIGSEGV, NULL},
  /* write after free of a large block */
  {"large-use-after-free", large_use_after_free, SIGSEGV, NULL},
  /* write past the usable pages of a large block */
  {"large-overrun", large_overrun, SIGSEGV, NULL},
  /* no false alarm: large blocks reused and resized */
  {"no-false-alarm-large-reuse", large_reuse, 0, NULL},
  /* no false alarm: normal use */
  {"no-false-alarm-normal-use", normal_use, 0, NULL},
};
enum { NDEATHS = sizeof deaths / sizeof deaths[0] };

static void call_death(void *arg) { ((const death_t *)arg)->fn(); }

/* The case of deaths[i] (the table of cases begins with live-blocks). */
static int case_death(void) {
  const death_t *d = &deaths[case_index() - 1];
  char err[512];
  int status = run_child(call_death, (void *)d, NULL, 0, err, sizeof err, 60);
  if (status < 0) {
    failf("the child timed out or could not start (%d)", status);
    return 1;
  }
  int got = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  bool ok = got == d->sig && (d->sig || WEXITSTATUS(status) == 0) && (!d->message || strstr(err, d->message));
  info("signal %d%s%s", got, err[0] ? ", stderr: " : "", strtok(err, "\n") ? err : "");
  CHECK(ok, "expected %s%s%s", d->sig ? strsignal(d->sig) : "exit status 0",
        d->message ? " and on stderr: " : "", d->message ? d->message : "");
  return 0;
}

int main(int argc, char **argv) {
  const char *have = getenv("STRATA_OPTIONS");
  if (!have || strcmp(have, OPTIONS) != 0) {
    setenv("STRATA_OPTIONS", OPTIONS, 1);
    execv("/proc/self/exe", argv);
    perror("execv");
    return 2;
  }
  case_t cases[1 + NDEATHS] = {{"live-blocks", case_live_blocks, 60}};
  for (int i = 0; i < NDEATHS; i++) cases[1 + i] = (case_t){deaths[i].name, case_death, 60};
  return cases_main(argc, argv, cases, 1 + NDEATHS);
}
