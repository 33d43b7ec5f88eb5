/* unit_sizeclass.c - every size up to SMALL_MAX: size -> class -> block size
 * round trip, monotonicity, the waste bound, span geometry, aligned
 * classes, and the block-start test at every byte of a span of each class. */
#include "sizeclass.h"
#include "span.h"
#include "testlib.h"

/* Each size's class: the smallest that holds it, 16-aligned, never going
 * down, wasting at most 15 bytes up to 64 and under 20% above. */
static int case_size_to_class(void) {
  unsigned prev = 0;
  for (size_t n = 1; n <= SMALL_MAX; n++) {
    unsigned c = class_of(n);
    CHECK(c < CLASS_COUNT, "size %zu: class %u out of range", n, c);
    if (c >= CLASS_COUNT) continue;
    size_t sz = class_info[c].size;
    CHECK(sz >= n, "size %zu: class %u block %zu too small", n, c, sz);
    CHECK(c == 0 || class_info[c - 1].size < n, "size %zu: class %u is not the smallest", n, c);
    CHECK(sz % ALIGNMENT == 0, "class %u: size %zu not 16-aligned", c, sz);
    CHECK(c >= prev, "size %zu: class went down", n);
    /* waste: at most 15 bytes up to 64, else under 20% of the block */
    if (n > 64) CHECK((sz - n) * 5 < sz, "size %zu -> %zu wastes %zu bytes (>= 20%%)", n, sz, sz - n);
    else CHECK(sz - n < 16, "size %zu -> %zu wastes too much", n, sz);
    prev = c;
  }
  CHECK(class_of(0) == 0, "size 0 must map to class 0");
  CHECK(class_info[CLASS_COUNT - 1].size == SMALL_MAX, "last class must be SMALL_MAX");
  return 0;
}

/* Each class's span: at least 8 blocks, at most 1/16 of it wasted at the tail. */
static int case_span_geometry(void) {
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    const class_info_t *ci = &class_info[c];
    size_t span = (size_t)ci->pages * PAGE_SIZE;
    CHECK(ci->count >= 8, "class %u: only %u blocks per span", c, ci->count);
    CHECK((size_t)ci->count * ci->size <= span, "class %u: blocks overflow the span", c);
    CHECK(span - (size_t)ci->count * ci->size <= span / 16, "class %u: tail waste over 1/16", c);
    CHECK(class_of(ci->size) == c, "class %u: its own size maps elsewhere", c);
    if (c > 0) CHECK(class_info[c - 1].size < ci->size, "class sizes not increasing at %u", c);
  }
  return 0;
}

/* Aligned requests: a class whose size is a multiple of the alignment. */
static int case_aligned_classes(void) {
  for (size_t a = 16; a <= PAGE_SIZE; a *= 2)
    for (size_t n = 1; n <= SMALL_MAX; n += 7) {
      unsigned c = class_of_aligned(n, a);
      if (c == CLASS_COUNT) { CHECK(n > SMALL_MAX - a, "no aligned class for %zu/%zu", n, a); continue; }
      CHECK(class_info[c].size >= n && class_info[c].size % a == 0, "aligned class %u wrong for %zu/%zu", c, n, a);
    }
  return 0;
}

/* span_is_block_start (and the fast path's copy of it) against division,
 * at every offset inside a span of each class: block starts pass, the
 * tail waste and every offset inside a block fail. */
static int case_block_start(void) {
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    span_t s = {0};
    s.kind = SPAN_SMALL;                /* what the page heap gives span_init_small */
    s.npages = class_info[c].pages;
    span_init_small(&s, c, NULL);
    s.start = (char *)((uintptr_t)1 << 40);
    for (size_t off = 0; off < (size_t)s.npages * PAGE_SIZE; off++) {
      bool want = off % s.block_size == 0 && off / s.block_size < s.count;
      CHECK(span_is_block_start(&s, s.start + off) == want,
            "class %u (%u B): block-start test wrong at offset %zu", c, s.block_size, off);
      CHECK(span_fast_block_start(&s, s.start + off) == want,
            "class %u (%u B): fast block-start test wrong at offset %zu", c, s.block_size, off);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  class_init();
  static const case_t cases[] = {
    {"size-to-class", case_size_to_class, 60},
    {"span-geometry", case_span_geometry, 60},
    {"aligned-classes", case_aligned_classes, 60},
    {"block-start", case_block_start, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
