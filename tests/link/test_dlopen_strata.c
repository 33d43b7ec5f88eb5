/* test_dlopen_strata.c - load libstrata.so into a running program.
 *
 * usage: test_dlopen_strata PATH/TO/libstrata.so [local|global]
 *
 * The program links no allocator and is not preloaded: glibc's malloc is in
 * use from the start, and glibc has handed out blocks (some from the break,
 * some mmapped) before Strata arrives. Then:
 *   1. dlopen(libstrata.so, RTLD_NOW | RTLD_LOCAL or RTLD_GLOBAL) must
 *      succeed. Strata's thread-local variables use the initial-exec model,
 *      which needs room in the static TLS block; glibc keeps a small surplus
 *      for such late loads, so this works only while Strata's TLS stays
 *      small. The size of its PT_TLS segment is printed.
 *   2. strata_malloc, strata_free, strata_realloc, strata_calloc,
 *      strata_owns and strata_malloc_trim are found with dlsym and used.
 *   3. strata_owns is 0 for every glibc block and 1 for Strata's.
 *   4. glibc and Strata allocate in turn, both growing the program break
 *      (Strata uses sbrk while the break is contiguous with its own heap):
 *      neither may hand out memory the other uses. Both trim.
 *   5. 4 threads use Strata and glibc side by side, and free each other's
 *      Strata blocks.
 *   6. malloc and free still resolve to glibc, and glibc frees its own
 *      blocks.
 * Passing means: no crash, no damaged block, every check true.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <limits.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "link_common.h"

/* The Strata functions, found with dlsym. */
static void *(*s_malloc)(size_t);
static void (*s_free)(void *);
static void *(*s_realloc)(void *, size_t);
static void *(*s_calloc)(size_t, size_t);
static int (*s_owns)(const void *);
static int (*s_trim)(size_t);

/* A block with a recognisable pattern, checked before it is freed. */
struct block {
  unsigned char *p;
  size_t n;
  unsigned char tag;
  int strata;   /* 1: from Strata, 0: from glibc */
};

static void fill(struct block *b) {
  /* Every byte of small blocks; sampled (every 256th byte and the ends) in
   * big ones. */
  size_t step = b->n <= 65536 ? 1 : 256;
  for (size_t i = 0; i < b->n; i += step) b->p[i] = (unsigned char)(b->tag + i);
  b->p[b->n - 1] = b->tag;
}
static int intact(const struct block *b) {
  size_t step = b->n <= 65536 ? 1 : 256;
  for (size_t i = 0; i < b->n - 1; i += step)
    if (b->p[i] != (unsigned char)(b->tag + i)) return 0;
  return b->p[b->n - 1] == b->tag;
}

/* Allocate with glibc or Strata and fill. */
static struct block get_block(int strata, size_t n, unsigned char tag) {
  struct block b = {strata ? s_malloc(n) : malloc(n), n, tag, strata};
  if (!b.p) link_die("%s(%zu) failed", strata ? "strata_malloc" : "malloc", n);
  fill(&b);
  return b;
}
static void put_block(struct block *b) {
  CHECK(intact(b), "%s block of %zu bytes at %p damaged", b->strata ? "Strata" : "glibc", b->n,
        (void *)b->p);
  if (b->strata)
    s_free(b->p);
  else
    free(b->p);
  b->p = NULL;
}

/* dl_iterate_phdr callback: print the PT_TLS segment of libstrata. */
static int print_tls(struct dl_phdr_info *dl, size_t size, void *data) {
  (void)size;
  const char *want = data;
  char real[PATH_MAX];
  if (!dl->dlpi_name || !realpath(dl->dlpi_name, real) || strcmp(real, want)) return 0;
  int found = 0;
  for (int i = 0; i < dl->dlpi_phnum; i++)
    if (dl->dlpi_phdr[i].p_type == PT_TLS) {
      info("libstrata.so PT_TLS: %zu bytes of static TLS (%zu initialised, alignment %zu)",
           (size_t)dl->dlpi_phdr[i].p_memsz, (size_t)dl->dlpi_phdr[i].p_filesz,
           (size_t)dl->dlpi_phdr[i].p_align);
      found = 1;
    }
  if (!found) info("libstrata.so has no PT_TLS segment");
  return 1;
}

/* ---- threads ---------------------------------------------------------------- */
#define THREADS 4
#define PER_THREAD 4000
/* Blocks a thread leaves for the next thread to free. */
static unsigned char *handoff[THREADS][PER_THREAD / 4];
static pthread_barrier_t barrier;

static void *thread_main(void *arg) {
  int self = (int)(intptr_t)arg;
  uint64_t rng = 0x9e3779b9u * (unsigned)(self + 1);
  int bad = 0;
  for (int i = 0; i < PER_THREAD; i++) {
    size_t n = 1 + rnd(&rng) % (i % 50 == 0 ? 300000 : 2000);
    unsigned char *s = s_malloc(n), *g = malloc(n);
    if (!s || !g || s_owns(s) != 1 || s_owns(g) != 0) bad++;
    if (s) memset(s, self, n);
    if (g) memset(g, self + 100, n);
    if (s && (s[0] != self || s[n - 1] != self)) bad++;
    free(g);
    if (i % 4 == 0)
      handoff[self][i / 4] = s;   /* freed by another thread */
    else
      s_free(s);
  }
  pthread_barrier_wait(&barrier);
  /* Free what the previous thread left, after checking its pattern. */
  int from = (self + THREADS - 1) % THREADS;
  for (int i = 0; i < PER_THREAD / 4; i++) {
    unsigned char *s = handoff[from][i];
    if (!s || s[0] != from) bad++;
    s_free(s);
  }
  return (void *)(intptr_t)bad;
}

int main(int argc, char **argv) {
  if (argc < 2) link_die("usage: %s PATH/TO/libstrata.so [local|global]", argv[0]);
  int global = argc > 2 && !strcmp(argv[2], "global");

  /* Before Strata: glibc provides malloc, and has blocks out. */
  const char *m = link_provider("malloc");
  if (strstr(m, "libstrata"))
    link_die("malloc already comes from %s: run without LD_PRELOAD", m);
  uint64_t rng = 12345;
  enum { GLIBC_EARLY = 2000 };
  static struct block early[GLIBC_EARLY];
  for (int i = 0; i < GLIBC_EARLY; i++) {
    /* Mostly small (from the break), every 100th 200 KiB (mmapped). */
    size_t n = i % 100 == 0 ? 200000 : 1 + rnd(&rng) % 4000;
    early[i] = get_block(0, n, (unsigned char)i);
  }

  /* ---- 1. load Strata -------------------------------------------------------- */
  char path[PATH_MAX];
  if (!realpath(argv[1], path)) link_die("%s: no such file", argv[1]);
  void *h = dlopen(path, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
  if (!h) link_die("dlopen(%s) failed: %s", path, dlerror());
  info("dlopen(libstrata.so, RTLD_NOW|%s) succeeded after %d glibc allocations",
       global ? "RTLD_GLOBAL" : "RTLD_LOCAL", GLIBC_EARLY);
  dl_iterate_phdr(print_tls, path);

  /* ---- 2. resolve ---------------------------------------------------------------- */
  struct { const char *name; void *fn; } syms[] = {
      {"strata_malloc", &s_malloc}, {"strata_free", &s_free},   {"strata_realloc", &s_realloc},
      {"strata_calloc", &s_calloc}, {"strata_owns", &s_owns},   {"strata_malloc_trim", &s_trim},
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
    void *sym = dlsym(h, syms[i].name);
    if (!sym) link_die("dlsym(%s): %s", syms[i].name, dlerror());
    memcpy(syms[i].fn, &sym, sizeof sym);   /* object pointer -> function pointer */
  }

  /* ---- 3. ownership -------------------------------------------------------------- */
  int glibc_owned = 0;
  for (int i = 0; i < GLIBC_EARLY; i++) glibc_owned += s_owns(early[i].p) != 0;
  CHECK(glibc_owned == 0, "strata_owns claims %d of %d glibc blocks", glibc_owned, GLIBC_EARLY);
  const size_t sizes[] = {1, 16, 100, 4000, 70000, 1 << 20, 20 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    struct block b = get_block(1, sizes[i], (unsigned char)(i + 7));
    CHECK(s_owns(b.p) == 1, "strata_malloc(%zu) = %p not owned by Strata", sizes[i], (void *)b.p);
    /* realloc and calloc too */
    unsigned char *r = s_realloc(b.p, sizes[i] * 2);
    CHECK(r && s_owns(r) == 1 && r[0] == (unsigned char)(i + 7),
          "strata_realloc to %zu failed or lost data", sizes[i] * 2);
    s_free(r);
    unsigned char *c = s_calloc(sizes[i], 1);
    CHECK(c && s_owns(c) == 1 && c[0] == 0 && c[sizes[i] - 1] == 0, "strata_calloc(%zu)",
          sizes[i]);
    s_free(c);
  }

  /* ---- 4. both allocators grow the break, interleaved ------------------------ */
  enum { MIXED = 6000 };
  static struct block mixed[MIXED];
  void *brk_before = sbrk(0);
  for (int i = 0; i < MIXED; i++) {
    /* glibc's small and medium blocks come from the break; Strata's
     * segments do too while the break is contiguous with its heap. */
    size_t n = i % 200 == 0 ? 100000 + rnd(&rng) % 100000 : 16 + rnd(&rng) % 8000;
    mixed[i] = get_block(i & 1, n, (unsigned char)(i * 3));
    /* Free a random earlier one now and then (holes on both sides). */
    if (i > 10 && rnd(&rng) % 3 == 0) {
      int k = (int)(rnd(&rng) % (unsigned)i);
      if (mixed[k].p) put_block(&mixed[k]);
    }
  }
  void *brk_mid = sbrk(0);
  int bad = 0, strata_in_break = 0, glibc_in_break = 0;
  for (int i = 0; i < MIXED; i++)
    if (mixed[i].p) {
      if (!intact(&mixed[i])) bad++;
      if (s_owns(mixed[i].p) != mixed[i].strata) bad++;
      /* Which blocks came from the break (for the report only: where each
       * allocator gets memory is its own business). */
      if ((void *)mixed[i].p >= brk_before && (void *)mixed[i].p < brk_mid)
        (mixed[i].strata ? &strata_in_break : &glibc_in_break)[0]++;
    }
  info("live interleaved blocks in the break grown meanwhile: %d from Strata, %d from glibc",
       strata_in_break, glibc_in_break);
  CHECK(bad == 0, "%d interleaved blocks damaged or attributed to the wrong allocator", bad);
  /* Free everything and let both trim their heaps (each may lower the
   * break only if the top of the break is its own). */
  for (int i = 0; i < MIXED; i++)
    if (mixed[i].p) put_block(&mixed[i]);
  malloc_trim(0);
  s_trim(0);
  info("program break %p -> %p (interleaved) -> %p (after both trims)", brk_before, brk_mid,
       sbrk(0));
  /* Both still work after the trims. */
  for (int i = 0; i < 200; i++) {
    struct block a = get_block(0, 1000 + (size_t)i * 300, 1), b = get_block(1, 1000 + (size_t)i * 300, 2);
    CHECK(s_owns(a.p) == 0 && s_owns(b.p) == 1, "after the trims: ownership wrong");
    put_block(&a);
    put_block(&b);
  }

  /* ---- 5. threads ------------------------------------------------------------------ */
  pthread_barrier_init(&barrier, NULL, THREADS);
  pthread_t tids[THREADS];
  for (int t = 0; t < THREADS; t++)
    if (pthread_create(&tids[t], NULL, thread_main, (void *)(intptr_t)t))
      link_die("pthread_create failed");
  for (int t = 0; t < THREADS; t++) {
    void *ret;
    pthread_join(tids[t], &ret);
    CHECK(ret == NULL, "thread %d: %ld failed check(s)", t, (long)(intptr_t)ret);
  }
  pthread_barrier_destroy(&barrier);

  /* ---- 6. glibc's own names are unchanged ----------------------------------- */
  m = link_provider("malloc");
  const char *f = link_provider("free");
  CHECK(!strstr(m, "libstrata") && !strstr(f, "libstrata"),
        "after dlopen, malloc comes from %s and free from %s", m, f);
  void *g = malloc(100);
  CHECK(g && s_owns(g) == 0, "malloc after dlopen returned a Strata block %p", g);
  free(g);
  for (int i = 0; i < GLIBC_EARLY; i++) put_block(&early[i]);   /* glibc free */

  return checks_result("test_dlopen_strata");
}
