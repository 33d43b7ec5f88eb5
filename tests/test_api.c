/* test_api.c - glibc semantics of every call of the malloc family.
 *
 * Built twice: through the strata_* names, and (with -DTEST_STD_NAMES, only
 * when the library exports the standard names) through malloc, free, ... in
 * which case every block must also be Strata's (strata_owns).
 *
 * Each group of checks is a case of its own (testlib.h: cases_main). No
 * randomness except a fixed-seed generator.
 */
#define _GNU_SOURCE
#include <malloc.h>

#include "strata.h"
#include "testlib.h"

#ifdef TEST_STD_NAMES
/* C23 names that older C libraries do not declare. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);
#define A_malloc malloc
#define A_free free
#define A_calloc calloc
#define A_realloc realloc
#define A_reallocarray reallocarray
#define A_posix_memalign posix_memalign
#define A_aligned_alloc aligned_alloc
#define A_memalign memalign
#define A_valloc valloc
#define A_pvalloc pvalloc
#define A_usable malloc_usable_size
#define A_free_sized free_sized
#define A_free_aligned_sized free_aligned_sized
#define A_trim malloc_trim
#else
#define A_malloc strata_malloc
#define A_free strata_free
#define A_calloc strata_calloc
#define A_realloc strata_realloc
#define A_reallocarray strata_reallocarray
#define A_posix_memalign strata_posix_memalign
#define A_aligned_alloc strata_aligned_alloc
#define A_memalign strata_memalign
#define A_valloc strata_valloc
#define A_pvalloc strata_pvalloc
#define A_usable strata_malloc_usable_size
#define A_free_sized strata_free_sized
#define A_free_aligned_sized strata_free_aligned_sized
#define A_trim strata_malloc_trim
#endif

static size_t page_size;

/* Checks every block should pass: non-NULL, 16-aligned (or `align`),
 * usable >= n, every usable byte writable, and Strata's own. */
static int check_block(void *p, size_t n, size_t align, const char *what) {
  if (!p) {
    CHECK(p != NULL, "%s(%zu) returned NULL", what, n);
    return 0;
  }
  if (align < 16) align = 16;
  CHECK(((uintptr_t)p & (align - 1)) == 0, "%s(%zu) = %p not aligned to %zu",
        what, n, p, align);
  size_t u = A_usable(p);
  CHECK(u >= n, "%s(%zu): usable size %zu < request", what, n, u);
  if (u > n) memset(p, 0xa5, u); /* all usable bytes must be writable */
  else if (n) memset(p, 0xa5, n);
  CHECK(strata_owns(p), "%s(%zu) = %p: strata_owns false", what, n, p);
  if (n) CHECK(strata_owns((char *)p + n - 1), "%s(%zu): last byte not owned", what, n);
  return 1;
}

/* A fixed-seed random stream (each case starts from the seed). */
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------------- */

static int case_malloc_zero(void) {
  enum { N = 1000 };
  static void *v[N];
  for (int i = 0; i < N; i++) {
    v[i] = A_malloc(hide(0));
    CHECK(v[i] != NULL, "malloc(0) #%d returned NULL", i);
    if (v[i]) {
      CHECK(((uintptr_t)v[i] & 15) == 0, "malloc(0) = %p not 16-aligned", v[i]);
      CHECK(strata_owns(v[i]), "malloc(0) = %p not owned", v[i]);
    }
  }
  void *s[N];
  memcpy(s, v, sizeof s);
  qsort(s, N, sizeof s[0], cmp_ptr);
  for (int i = 1; i < N; i++)
    CHECK(s[i] != s[i - 1] || !s[i], "malloc(0) returned %p twice", s[i]);
  for (int i = 0; i < N; i++) A_free(v[i]);
  /* realloc(NULL, 0) is malloc(0). */
  void *p = A_realloc(NULL, hide(0));
  CHECK(p != NULL, "realloc(NULL, 0) returned NULL");
  A_free(p);
  p = A_calloc(hide(0), 1);
  CHECK(p != NULL, "calloc(0, 1) returned NULL");
  A_free(p);
  p = A_calloc(1, hide(0));
  CHECK(p != NULL, "calloc(1, 0) returned NULL");
  A_free(p);
  /* Size 0 at every alignment, small to huge: distinct aligned blocks. */
  for (size_t align = 16; align <= ((size_t)64 << 20); align <<= 1) {
    void *a = NULL, *b = A_memalign(align, hide(0));
    int r = A_posix_memalign(&a, align, hide(0));
    CHECK(r == 0 && a && b && a != b, "size 0 at alignment %zu: %p and %p (%d)", align, a, b, r);
    CHECK(((uintptr_t)a | (uintptr_t)b) % align == 0, "size 0: %p, %p not aligned to %zu", a, b, align);
    if (a) memset(a, 1, A_usable(a));
    A_free(a);
    A_free(b);
  }
  return 0;
}

static int case_free_null_and_errno(void) {
  errno = 1234;
  A_free(NULL);
  CHECK(errno == 1234, "free(NULL) changed errno to %d", errno);
  A_free_sized(NULL, 0);
  CHECK(errno == 1234, "free_sized(NULL) changed errno to %d", errno);
  A_free_aligned_sized(NULL, 64, 0);
  CHECK(errno == 1234, "free_aligned_sized(NULL) changed errno to %d", errno);
  CHECK(A_usable(NULL) == 0, "malloc_usable_size(NULL) = %zu", A_usable(NULL));

  /* free preserves errno in every tier. */
  static const size_t sizes[] = {1, 100, 4000, 40000, 300000, 3 * MiB, 20 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = A_malloc(hide(sizes[i]));
    CHECK(p != NULL, "malloc(%zu) failed", sizes[i]);
    errno = 1234;
    A_free(p);
    CHECK(errno == 1234, "free of a %zu-byte block changed errno to %d", sizes[i], errno);
  }

  /* Successful calls leave errno alone. */
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p, *q;
    int r;
    errno = 4321;
    p = A_malloc(hide(n));
    CHECK(p && errno == 4321, "malloc(%zu) = %p, errno %d", n, p, errno);
    q = A_realloc(p, hide(n * 2));
    CHECK(q && errno == 4321, "realloc(%zu) = %p, errno %d", n * 2, q, errno);
    if (q) p = q;
    q = A_realloc(p, hide(n / 2 + 1));
    CHECK(q && errno == 4321, "realloc(%zu) = %p, errno %d", n / 2 + 1, q, errno);
    if (q) p = q;
    A_free(p);
    p = A_calloc(hide(n), 1);
    CHECK(p && errno == 4321, "calloc(%zu, 1) = %p, errno %d", n, p, errno);
    A_free_sized(p, n);
    p = NULL;
    r = A_posix_memalign(&p, 64, hide(n));
    CHECK(r == 0 && p && errno == 4321, "posix_memalign(64, %zu) = %d, errno %d", n, r, errno);
    A_free(p);
    p = A_aligned_alloc(128, hide(n));
    CHECK(p && errno == 4321, "aligned_alloc(128, %zu), errno %d", n, errno);
    A_free_aligned_sized(p, 128, n);
    p = A_memalign(256, hide(n));
    CHECK(p && errno == 4321, "memalign(256, %zu), errno %d", n, errno);
    (void)A_usable(p);
    CHECK(errno == 4321, "malloc_usable_size changed errno to %d", errno);
    A_free(p);
    p = A_reallocarray(NULL, hide(n), 1);
    CHECK(p && errno == 4321, "reallocarray(NULL, %zu, 1), errno %d", n, errno);
    A_free(p);
  }
  errno = 0;
  return 0;
}

static void expect_enomem(void *p, const char *what) {
  CHECK(p == NULL, "%s returned %p, expected NULL", what, p);
  CHECK(errno == ENOMEM, "%s: errno %d, expected ENOMEM", what, errno);
  if (p) A_free(p);
}

static int case_overflow(void) {
  char what[128];
  const size_t bad[] = {
      SIZE_MAX,           SIZE_MAX - 1,          SIZE_MAX - 15,
      SIZE_MAX - 4095,    SIZE_MAX - 8 * MiB,    (size_t)PTRDIFF_MAX + 1,
      (size_t)PTRDIFF_MAX, (size_t)PTRDIFF_MAX - 4095, SIZE_MAX / 2 + 4096,
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n = hide(bad[i]);
    snprintf(what, sizeof what, "malloc(%#zx)", n);
    errno = 0;
    expect_enomem(A_malloc(n), what);
    snprintf(what, sizeof what, "calloc(1, %#zx)", n);
    errno = 0;
    expect_enomem(A_calloc(1, n), what);
    snprintf(what, sizeof what, "realloc(NULL, %#zx)", n);
    errno = 0;
    expect_enomem(A_realloc(NULL, n), what);
    snprintf(what, sizeof what, "aligned_alloc(64, %#zx)", n);
    errno = 0;
    expect_enomem(A_aligned_alloc(64, n), what);
    snprintf(what, sizeof what, "memalign(4096, %#zx)", n);
    errno = 0;
    expect_enomem(A_memalign(4096, n), what);
    snprintf(what, sizeof what, "memalign(1 MiB, %#zx)", n);
    errno = 0;
    expect_enomem(A_memalign(MiB, n), what);
    snprintf(what, sizeof what, "valloc(%#zx)", n);
    errno = 0;
    expect_enomem(A_valloc(n), what);
    snprintf(what, sizeof what, "pvalloc(%#zx)", n);
    errno = 0;
    expect_enomem(A_pvalloc(n), what);
    /* glibc sets errno too (its tst-malloc-thread-fail checks it). */
    void *out = (void *)0x1234;
    errno = 0;
    int r = A_posix_memalign(&out, 64, n);
    CHECK(r == ENOMEM && errno == ENOMEM, "posix_memalign(64, %#zx) returned %d, errno %d, expected ENOMEM",
          n, r, errno);
    CHECK(out == (void *)0x1234, "posix_memalign(64, %#zx) changed *out to %p", n, out);
    errno = 0;
    r = A_posix_memalign(&out, 2 * MiB, n);
    CHECK(r == ENOMEM && errno == ENOMEM, "posix_memalign(2 MiB, %#zx) returned %d, errno %d, expected ENOMEM",
          n, r, errno);
    CHECK(out == (void *)0x1234, "posix_memalign(2 MiB, %#zx) changed *out to %p", n, out);
  }

  /* calloc and reallocarray: the product overflows, or exceeds PTRDIFF_MAX. */
  const struct { size_t a, b; } prod[] = {
      {SIZE_MAX / 2 + 1, 2},
      {2, SIZE_MAX / 2 + 1},
      {(size_t)1 << 32, (size_t)1 << 32},
      {SIZE_MAX, SIZE_MAX},
      {(size_t)PTRDIFF_MAX / 2 + 1, 2},
      {3, SIZE_MAX / 3 + 1},
      {SIZE_MAX / 16 + 1, 16},
  };
  for (size_t i = 0; i < sizeof prod / sizeof prod[0]; i++) {
    size_t a = hide(prod[i].a), b = hide(prod[i].b);
    snprintf(what, sizeof what, "calloc(%#zx, %#zx)", a, b);
    errno = 0;
    expect_enomem(A_calloc(a, b), what);
    snprintf(what, sizeof what, "reallocarray(NULL, %#zx, %#zx)", a, b);
    errno = 0;
    expect_enomem(A_reallocarray(NULL, a, b), what);

    void *p = A_malloc(100);
    CHECK(p != NULL, "malloc(100) failed");
    if (!p) continue;
    fill_pattern(p, 100, 7);
    snprintf(what, sizeof what, "reallocarray(p, %#zx, %#zx)", a, b);
    errno = 0;
    void *q = A_reallocarray(hide_ptr(p), a, b);
    expect_enomem(q, what);
    CHECK(pattern_mismatch(p, 100, 7) == 100, "%s: the block was changed", what);
    A_free(p);
  }
  return 0;
}

static int case_realloc_semantics(void) {
  /* realloc(NULL, n) is malloc(n). */
  static const size_t sizes[] = {1, 17, 100, 4000, 40000, 300000, 3 * MiB, 20 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = A_realloc(NULL, hide(sizes[i]));
    if (check_block(p, sizes[i], 16, "realloc(NULL, n)")) A_free(p);
  }
  /* realloc(p, 0) frees p and returns NULL (glibc). */
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = A_malloc(hide(sizes[i]));
    CHECK(p != NULL, "malloc(%zu) failed", sizes[i]);
    void *q = A_realloc(p, hide(0));
    CHECK(q == NULL, "realloc(p of %zu bytes, 0) returned %p, expected NULL", sizes[i], q);
    if (q) A_free(q);
  }
  /* A failed realloc leaves the block intact, readable and freeable. */
  static const size_t fsizes[] = {24, 1000, 40000, 300000, 5 * MiB, 20 * MiB};
  const size_t bad[] = {SIZE_MAX, SIZE_MAX - 15, (size_t)PTRDIFF_MAX + 1,
                        (size_t)PTRDIFF_MAX, SIZE_MAX - 64 * MiB};
  for (size_t i = 0; i < sizeof fsizes / sizeof fsizes[0]; i++) {
    size_t n = fsizes[i];
    void *p = A_malloc(n);
    CHECK(p != NULL, "malloc(%zu) failed", n);
    if (!p) continue;
    size_t u = A_usable(p);
    fill_pattern(p, n, 3);
    for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
      errno = 0;
      void *q = A_realloc(hide_ptr(p), hide(bad[j]));
      CHECK(q == NULL, "realloc(%zu-byte block, %#zx) returned %p", n, bad[j], q);
      CHECK(errno == ENOMEM, "realloc(%zu-byte block, %#zx): errno %d", n, bad[j], errno);
        size_t off = pattern_mismatch(p, n, 3);
      CHECK(off == n, "failed realloc(%zu-byte block, %#zx) changed byte %zu", n, bad[j], off);
      CHECK(A_usable(p) == u, "failed realloc changed the usable size %zu -> %zu", u,
            A_usable(p));
    }
    /* Still a normal block: it can grow and be freed. */
    void *q = A_realloc(p, n + 1000);
    CHECK(q != NULL, "realloc(%zu -> %zu) after a failed realloc", n, n + 1000);
    if (q) {
      CHECK(pattern_mismatch(q, n, 3) == n, "contents lost after a failed realloc");
      p = q;
    }
    A_free(p);
  }
  return 0;
}

/* Contents survive every tier change, up and down. */
static int case_realloc_tiers(void) {
  static const size_t ladder[] = {1, 100, 4000, 40000, 200000, 3 * MiB, 20 * MiB, 100 * MiB};
  const size_t L = sizeof ladder / sizeof ladder[0];
  size_t seq[64], ns = 0;
  for (size_t i = 0; i < L; i++) seq[ns++] = ladder[i];
  for (size_t i = L - 1; i-- > 0;) seq[ns++] = ladder[i];
  /* Direct jumps between far tiers. */
  seq[ns++] = 100 * MiB;
  seq[ns++] = 1;
  seq[ns++] = 3 * MiB;
  seq[ns++] = 100;
  seq[ns++] = 20 * MiB;
  seq[ns++] = 40000;
  seq[ns++] = 200000;
  seq[ns++] = 4000;
  /* Small steps inside a tier (in-place growth and shrink paths). */
  seq[ns++] = 4100;
  seq[ns++] = 5000;
  seq[ns++] = 4001;
  seq[ns++] = 300000;
  seq[ns++] = 310000;
  seq[ns++] = 290000;
  seq[ns++] = 21 * MiB;
  seq[ns++] = 19 * MiB;
  seq[ns++] = 1;

  unsigned tag = 1;
  size_t cur = seq[0];
  char *p = A_malloc(cur);
  CHECK(p != NULL, "malloc(%zu) failed", cur);
  if (!p) return 0;
  fill_pattern(p, cur, tag);
  for (size_t i = 1; i < ns; i++) {
    size_t n = seq[i];
    char *q = A_realloc(p, n);
    CHECK(q != NULL, "realloc(%zu -> %zu) failed", cur, n);
    if (!q) {
      A_free(hide_ptr(p));
      return 0;
    }
    p = q;
    size_t keep = cur < n ? cur : n;
    size_t off = pattern_mismatch(p, keep, tag);
    CHECK(off == keep, "realloc(%zu -> %zu): byte %zu of %zu changed", cur, n, off, keep);
    check_block(p, n, 16, "realloc");
    tag++;
    fill_pattern(p, n, tag);
    cur = n;
  }
  A_free(p);

  /* Random sizes with a fixed seed, several blocks alive at once. */
  enum { B = 8 };
  char *blk[B] = {0};
  size_t sz[B] = {0};
  unsigned tg[B] = {0};
  for (int it = 0; it < 400; it++) {
    int k = (int)(rnd(&rng) % B);
    size_t n;
    uint64_t r = rnd(&rng) % 100;
    if (r < 60) n = 1 + rnd(&rng) % 2048;
    else if (r < 85) n = 1 + rnd(&rng) % (64 * KiB);
    else if (r < 97) n = 1 + rnd(&rng) % (4 * MiB);
    else n = 8 * MiB + rnd(&rng) % (24 * MiB);
    char *q = A_realloc(blk[k], n);
    CHECK(q != NULL, "realloc(%zu -> %zu) failed", sz[k], n);
    if (!q) continue;
    size_t keep = sz[k] < n ? sz[k] : n;
    size_t off = pattern_mismatch(q, keep, tg[k]);
    CHECK(off == keep, "random realloc(%zu -> %zu): byte %zu changed", sz[k], n, off);
    CHECK(((uintptr_t)q & 15) == 0, "realloc result %p not 16-aligned", (void *)q);
    blk[k] = q;
    sz[k] = n;
    tg[k] = (unsigned)it + 100;
    fill_pattern(q, n, tg[k]);
  }
  for (int k = 0; k < B; k++) A_free(blk[k]);
  return 0;
}

static int case_posix_memalign_errors(void) {
  static const size_t badal[] = {0, 1, 2, 3, 4, 6, 12, 24, 48, 100, 4097,
                                 (size_t)1 << 63 | 8, SIZE_MAX};
  for (size_t i = 0; i < sizeof badal / sizeof badal[0]; i++) {
    /* 4 is a power of two but not a multiple of sizeof(void *) (8). 1 and 2
     * likewise. On a 32-bit target 4 would be valid. */
    if (badal[i] == sizeof(void *)) continue;
    void *out = (void *)0x5678;
    errno = 777;
    int r = A_posix_memalign(&out, hide(badal[i]), 64);
    CHECK(r == EINVAL, "posix_memalign(alignment %#zx) returned %d, expected EINVAL",
          badal[i], r);
    CHECK(out == (void *)0x5678, "posix_memalign(alignment %#zx) changed *out to %p",
          badal[i], out);
    CHECK(errno == 777, "posix_memalign(alignment %#zx) changed errno to %d", badal[i], errno);
    if (r == 0 && out != (void *)0x5678) A_free(out);
  }
  errno = 0;
  return 0;
}

static int case_alignment(void) {
  /* Sizes to try with each alignment: around the alignment itself and in
   * each tier; fewer (and only up to the alignment) for the big alignments,
   * whose blocks are written in full. */
  for (size_t al = 1; al <= 64 * MiB; al <<= 1) {
    const size_t sizes[] = {1, 100, al, al + 1, 4000, 40000, 300000, 3 * MiB};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
      size_t n = sizes[si];
      if (al >= MiB && n > al) continue; /* keep the run short */
      if (al >= 4 * MiB && si > 2) continue;
      if (al >= 8 * MiB && si > 1) continue; /* page faults are slow */
      void *p;
      p = A_aligned_alloc(al, n);
      if (check_block(p, n, al, "aligned_alloc")) A_free(p);
      p = A_memalign(al, n);
      if (check_block(p, n, al, "memalign")) A_free(p);
      if (al >= sizeof(void *)) {
        p = NULL;
        int r = A_posix_memalign(&p, al, n);
        CHECK(r == 0, "posix_memalign(%zu, %zu) returned %d", al, n, r);
        if (r == 0 && check_block(p, n, al, "posix_memalign")) {
          if (n >= 64 && n <= 4 * MiB) {
            /* The block survives a realloc to half its size. */
            fill_pattern(p, n, 9);
            void *q = A_realloc(p, n / 2);
            CHECK(q != NULL, "realloc of an aligned block failed");
            if (q) {
              CHECK(pattern_mismatch(q, n / 2, 9) == n / 2, "realloc of an aligned block lost data");
              p = q;
            }
          }
          A_free(p);
        }
      }
      /* free_aligned_sized with the alignment and size of the request. */
      if (n <= 4 * MiB) {
        p = A_aligned_alloc(al, n);
        if (check_block(p, n, al, "aligned_alloc")) A_free_aligned_sized(p, al, n);
      }
    }
  }
  /* Many aligned blocks alive at once: they must not overlap. */
  enum { M = 200 };
  static char *v[M];
  static size_t vn[M];
  for (int i = 0; i < M; i++) {
    size_t al = (size_t)16 << (rnd(&rng) % 10);
    vn[i] = 1 + rnd(&rng) % 5000;
    v[i] = A_aligned_alloc(al, vn[i]);
    CHECK(v[i] && ((uintptr_t)v[i] & (al - 1)) == 0, "aligned_alloc(%zu, %zu) = %p", al,
          vn[i], (void *)v[i]);
    if (v[i]) fill_pattern(v[i], vn[i], (unsigned)i);
  }
  for (int i = 0; i < M; i++) {
    if (v[i]) CHECK(pattern_mismatch(v[i], vn[i], (unsigned)i) == vn[i], "aligned block %d overwritten", i);
    A_free(v[i]);
  }
  return 0;
}

static int case_valloc(void) {
  static const size_t sizes[] = {0, 1, 100, 4095, 4096, 4097, 10000, 40000, 300000,
                                 3 * MiB + 5, 20 * MiB + 1};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *p = A_valloc(n);
    if (check_block(p, n, page_size, "valloc")) A_free(p);
    p = A_pvalloc(n);
    /* glibc rounds the size up to a page multiple (0 stays 0). */
    size_t rounded = (n + page_size - 1) / page_size * page_size;
    if (check_block(p, n, page_size, "pvalloc")) {
      size_t u = A_usable(p);
      CHECK(u >= rounded, "pvalloc(%zu): usable %zu < page-rounded %zu", n, u, rounded);
      if (rounded) memset(p, 0x3c, rounded);
      A_free(p);
    }
  }
  return 0;
}

static int case_usable_size(void) {
  /* Every size up to 2 KiB, then a geometric sweep with neighbours. */
  for (size_t n = 0; n <= 2048; n++) {
    void *p = A_malloc(n);
    if (check_block(p, n, 16, "malloc")) A_free(p);
  }
  for (size_t b = 2048; b <= 64 * MiB; b = b + b / 4) {
    const size_t ns[] = {b - 1, b, b + 1, (b + 15) & ~(size_t)15};
    for (size_t j = 0; j < 4; j++) {
      if (b > 8 * MiB && j != 1) continue;
      void *p = A_malloc(ns[j]);
      if (check_block(p, ns[j], 16, "malloc")) A_free(p);
    }
  }
  /* Tier edges. */
  const size_t edges[] = {32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 64 * KiB, 8 * MiB - 1,
                          8 * MiB, 8 * MiB + 1, 16 * MiB - 1, 16 * MiB, 16 * MiB + 1};
  for (size_t j = 0; j < sizeof edges / sizeof edges[0]; j++) {
    void *p = A_malloc(edges[j]);
    if (check_block(p, edges[j], 16, "malloc")) A_free_sized(p, edges[j]);
    p = A_calloc(1, edges[j]);
    if (check_block(p, edges[j], 16, "calloc")) A_free(p);
  }
  /* Blocks alive at once do not overlap: fill each whole usable area. */
  enum { M = 600 };
  static char *v[M];
  static size_t vu[M];
  for (int i = 0; i < M; i++) {
    size_t n = (rnd(&rng) % 8 == 0) ? 1 + rnd(&rng) % (600 * KiB) : 1 + rnd(&rng) % 3000;
    v[i] = A_malloc(n);
    CHECK(v[i] != NULL, "malloc(%zu) failed", n);
    vu[i] = v[i] ? A_usable(v[i]) : 0;
    if (v[i]) fill_pattern(v[i], vu[i], (unsigned)i);
  }
  for (int i = 0; i < M; i++) {
    if (v[i]) {
      size_t off = pattern_mismatch(v[i], vu[i], (unsigned)i);
      CHECK(off == vu[i], "block %d (%zu usable) overwritten at %zu", i, vu[i], off);
    }
    A_free(v[i]);
  }
  return 0;
}

static int case_calloc(void) {
  static const size_t sizes[] = {1, 16, 100, 1000, 4096, 20000, 32 * KiB, 40000,
                                 300000, 2 * MiB, 10 * MiB, 20 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    int rounds = n >= MiB ? 8 : 50;
    for (int r = 0; r < rounds; r++) {
      /* Dirty a block of this size, free it, and calloc the same size:
       * the allocator will often hand the same memory back. */
      void *d = A_malloc(n);
      CHECK(d != NULL, "malloc(%zu) failed", n);
      if (!d) continue;
      memset(d, 0xff, A_usable(d));
      A_free(d);
      unsigned char *c;
      switch (r % 3) {
      case 0: c = A_calloc(1, n); break;
      case 1: c = A_calloc(n, 1); break;
      default: c = A_calloc((n + 15) / 16, 16); break;
      }
      CHECK(c != NULL, "calloc for %zu failed", n);
      if (!c) continue;
      CHECK(((uintptr_t)c & 15) == 0, "calloc result %p not 16-aligned", (void *)c);
      for (size_t k = 0; k < n; k++)
        if (c[k]) {
          CHECK(c[k] == 0, "calloc(%zu) round %d: byte %zu is %#x (recycled memory)", n, r,
                k, c[k]);
          break;
        }
      memset(c, 0xee, n);
      A_free(c);
    }
  }
  /* Dirty many blocks of mixed sizes, then calloc the same mix. */
  enum { M = 300 };
  static void *v[M];
  static size_t vn[M];
  for (int i = 0; i < M; i++) {
    vn[i] = 1 + rnd(&rng) % 9000;
    v[i] = A_malloc(vn[i]);
    if (v[i]) memset(v[i], 0xff, A_usable(v[i]));
  }
  for (int i = 0; i < M; i++) A_free(v[i]);
  for (int i = 0; i < M; i++) {
    unsigned char *c = A_calloc(vn[i], 1);
    CHECK(c != NULL, "calloc(%zu) failed", vn[i]);
    if (!c) continue;
    for (size_t k = 0; k < vn[i]; k++)
      if (c[k]) {
        CHECK(c[k] == 0, "calloc(%zu): byte %zu is %#x", vn[i], k, c[k]);
        break;
      }
    v[i] = c;
  }
  for (int i = 0; i < M; i++) A_free(v[i]);
  return 0;
}

static int case_free_sized(void) {
  for (size_t n = 1; n <= 64 * MiB; n = n * 3 + 1) {
    void *p = A_malloc(n);
    if (check_block(p, n, 16, "malloc")) A_free_sized(p, n);
    p = A_calloc(n, 1);
    if (check_block(p, n, 16, "calloc")) A_free_sized(p, n);
    for (size_t al = 16; al <= 2 * MiB && n <= 3 * MiB; al <<= 3) {
      p = A_aligned_alloc(al, n);
      if (check_block(p, n, al, "aligned_alloc")) A_free_aligned_sized(p, al, n);
    }
  }
  return 0;
}

static char static_buf[4096];

static int case_owns(void) {
  char stack_buf[256];
  memset(stack_buf, 1, sizeof stack_buf);
  CHECK(!strata_owns(stack_buf), "owns(stack %p)", (void *)stack_buf);
  CHECK(!strata_owns(stack_buf + 100), "owns(stack + 100)");
  CHECK(!strata_owns(static_buf), "owns(static %p)", (void *)static_buf);
  CHECK(!strata_owns(static_buf + 2048), "owns(static + 2048)");
  CHECK(!strata_owns(&failures), "owns(&failures)");
  CHECK(!strata_owns((const void *)(uintptr_t)&case_owns), "owns(code)");
  CHECK(!strata_owns(NULL), "owns(NULL)");
  CHECK(!strata_owns((void *)1), "owns(1)");
  CHECK(!strata_owns((void *)0xbadbeef), "owns(0xbadbeef)");
  CHECK(!strata_owns((void *)(uintptr_t)-1), "owns(-1)");
  CHECK(!strata_owns((void *)((uintptr_t)1 << 63)), "owns(1<<63)");
  CHECK(!strata_owns((void *)(((uintptr_t)1 << 47) - 16)), "owns(top of user space)");
  /* Foreign mappings of several sizes and alignments. */
  static const size_t msz[] = {4096, 64 * KiB, 4 * MiB, 80 * MiB};
  for (size_t i = 0; i < sizeof msz / sizeof msz[0]; i++) {
    char *m = mmap(NULL, msz[i], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap failed");
    if (m == MAP_FAILED) continue;
    for (size_t off = 0; off < msz[i]; off += msz[i] / 4)
      CHECK(!strata_owns(m + off), "owns(foreign mmap %p + %zu)", (void *)m, off);
    CHECK(!strata_owns(m + msz[i] - 1), "owns(foreign mmap end)");
    munmap(m, msz[i]);
  }
  /* Ours, in every tier, including interior pointers. */
  static const size_t sizes[] = {1, 100, 4000, 40000, 300000, 3 * MiB, 20 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = A_malloc(sizes[i]);
    CHECK(p != NULL, "malloc(%zu)", sizes[i]);
    if (!p) continue;
    CHECK(strata_owns(p), "owns(malloc(%zu))", sizes[i]);
    CHECK(strata_owns(p + sizes[i] / 2), "owns(interior of malloc(%zu))", sizes[i]);
    CHECK(strata_owns(p + sizes[i] - 1), "owns(end of malloc(%zu))", sizes[i]);
    A_free(p);
  }
  return 0;
}

static int case_alignment_every_result(void) {
  enum { M = 4000 };
  static void *v[M];
  for (int i = 0; i < M; i++) {
    size_t n = rnd(&rng) % 1000 < 990 ? rnd(&rng) % 1025 : rnd(&rng) % (2 * MiB);
    v[i] = (i % 4 == 3) ? A_calloc(1, n) : A_malloc(n);
    CHECK(v[i] != NULL, "malloc(%zu) failed", n);
    CHECK(((uintptr_t)v[i] & 15) == 0, "malloc(%zu) = %p is not 16-aligned", n, v[i]);
    if (i % 5 == 4 && v[i]) {
      void *q = A_realloc(v[i], n + 1 + rnd(&rng) % 200);
      CHECK(q != NULL && ((uintptr_t)q & 15) == 0, "realloc result %p", q);
      if (q) v[i] = q;
    }
  }
  for (int i = 0; i < M; i += 2) A_free(v[i]);
  for (int i = 0; i < M; i += 2) {
    v[i] = A_malloc(rnd(&rng) % 300);
    CHECK(((uintptr_t)v[i] & 15) == 0, "malloc = %p is not 16-aligned", v[i]);
  }
  for (int i = 0; i < M; i++) A_free(v[i]);
  return 0;
}

static int case_trim(void) {
  enum { M = 64 };
  void *v[M];
  for (int i = 0; i < M; i++) {
    v[i] = A_malloc(i % 2 ? 200 * KiB : 4000);
    if (v[i]) memset(v[i], 1, i % 2 ? 200 * KiB : 4000);
  }
  for (int i = 0; i < M; i++) A_free(v[i]);
  int r = A_trim(0);
  CHECK(r == 0 || r == 1, "malloc_trim(0) returned %d", r);
  r = A_trim(1 * MiB);
  CHECK(r == 0 || r == 1, "malloc_trim(1 MiB) returned %d", r);
  /* Allocation works after a trim, and memory comes back zeroed for calloc. */
  for (int i = 0; i < M; i++) {
    size_t n = i % 2 ? 200 * KiB : 4000;
    unsigned char *c = A_calloc(1, n);
    CHECK(c != NULL, "calloc after trim failed");
    if (!c) continue;
    for (size_t k = 0; k < n; k += 61)
      if (c[k]) {
        CHECK(c[k] == 0, "calloc after trim: byte %zu is %#x", k, c[k]);
        break;
      }
    A_free(c);
  }
  return 0;
}

#ifdef TEST_STD_NAMES
/* The standard names and the strata_ names are the same allocator. */
static int case_interop(void) {
  void *p = malloc(hide(100));
  CHECK(p && strata_owns(p), "malloc result %p not Strata's", p);
  strata_free(p);
  p = strata_malloc(300000);
  CHECK(p != NULL, "strata_malloc failed");
  CHECK(malloc_usable_size(p) == strata_malloc_usable_size(p), "usable sizes differ");
  p = realloc(p, 400000);
  CHECK(p && strata_owns(p), "realloc result not Strata's");
  free(p);
  char *s = strdup("a string duplicated by the C library");
  CHECK(s && strata_owns(s), "strdup result %p not Strata's", (void *)s);
  free(s);
  char *a = NULL;
  int r = asprintf(&a, "%d-%s", 42, "x");
  CHECK(r > 0 && a && strata_owns(a), "asprintf buffer not Strata's");
  free(a);
  return 0;
}
#endif

/* A block malloc hands out shows nothing of the free list it came from:
 * its first word held the encoded link (derived from the per-process
 * secret), its second the free key; an uninitialised read must not leak
 * them. Freed blocks are reused at once, so each class is checked on a
 * block that was linked to another. */
static int case_no_free_list_shown(void) {
  for (size_t n = 16; n <= 32 * KiB; n += n < 1024 ? 16 : n / 4) {
    for (int r = 0; r < 3; r++) {
      void *a = A_malloc(n), *b = A_malloc(n);
      A_free(a);
      A_free(b);
      uint64_t *c = A_malloc(n);
      CHECK(c != NULL, "malloc(%zu) failed", n);
      if (!c) continue;
      CHECK(c[0] == 0 && c[1] == 0, "malloc(%zu) shows the free list's words %#llx %#llx", n,
            (unsigned long long)c[0], (unsigned long long)c[1]);
      A_free(c);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  page_size = (size_t)sysconf(_SC_PAGESIZE);
  static const case_t cases[] = {
    {"no-free-list-shown", case_no_free_list_shown, 60},
    {"malloc-zero", case_malloc_zero, 60},
    {"free-null-and-errno", case_free_null_and_errno, 60},
    {"overflow", case_overflow, 60},
    {"realloc-semantics", case_realloc_semantics, 60},
    {"realloc-tiers", case_realloc_tiers, 120},
    {"posix-memalign-errors", case_posix_memalign_errors, 60},
    {"alignment", case_alignment, 120},
    {"valloc", case_valloc, 60},
    {"usable-size", case_usable_size, 120},
    {"calloc", case_calloc, 120},
    {"free-sized", case_free_sized, 120},
    {"owns", case_owns, 60},
    {"alignment-every-result", case_alignment_every_result, 60},
    {"trim", case_trim, 60},
#ifdef TEST_STD_NAMES
    {"interop", case_interop, 60},
#endif
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
