/* unit_sizeclass.c - every size up to SMALL_MAX: size -> class -> block size
 * round trip, monotonicity, the waste bound, span geometry, aligned
 * classes, and the block-start test at every byte of a span of each class. */
#include <stdio.h>
#include "sizeclass.h"
#include "span.h"

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { failures++; if (failures < 20) { printf(__VA_ARGS__); printf("\n"); } } } while (0)

int main(void) {
  class_init();
  unsigned prev = 0;
  for (size_t n = 1; n <= SMALL_MAX; n++) {
    unsigned c = class_of(n);
    EXPECT(c < CLASS_COUNT, "size %zu: class %u out of range", n, c);
    if (c >= CLASS_COUNT) continue;
    size_t sz = class_info[c].size;
    EXPECT(sz >= n, "size %zu: class %u block %zu too small", n, c, sz);
    EXPECT(c == 0 || class_info[c - 1].size < n, "size %zu: class %u is not the smallest", n, c);
    EXPECT(sz % ALIGNMENT == 0, "class %u: size %zu not 16-aligned", c, sz);
    EXPECT(c >= prev, "size %zu: class went down", n);
    /* waste: at most 15 bytes up to 64, else under 20% of the block */
    if (n > 64) EXPECT((sz - n) * 5 < sz, "size %zu -> %zu wastes %zu bytes (>= 20%%)", n, sz, sz - n);
    else EXPECT(sz - n < 16, "size %zu -> %zu wastes too much", n, sz);
    prev = c;
  }
  EXPECT(class_of(0) == 0, "size 0 must map to class 0");
  EXPECT(class_info[CLASS_COUNT - 1].size == SMALL_MAX, "last class must be SMALL_MAX");
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    const class_info_t *ci = &class_info[c];
    size_t span = (size_t)ci->pages * PAGE_SIZE;
    EXPECT(ci->count >= 8, "class %u: only %u blocks per span", c, ci->count);
    EXPECT((size_t)ci->count * ci->size <= span, "class %u: blocks overflow the span", c);
    EXPECT(span - (size_t)ci->count * ci->size <= span / 16, "class %u: tail waste over 1/16", c);
    EXPECT(class_of(ci->size) == c, "class %u: its own size maps elsewhere", c);
    if (c > 0) EXPECT(class_info[c - 1].size < ci->size, "class sizes not increasing at %u", c);
  }
  for (size_t a = 16; a <= PAGE_SIZE; a *= 2)
    for (size_t n = 1; n <= SMALL_MAX; n += 7) {
      unsigned c = class_of_aligned(n, a);
      if (c == CLASS_COUNT) { EXPECT(n > SMALL_MAX - a, "no aligned class for %zu/%zu", n, a); continue; }
      EXPECT(class_info[c].size >= n && class_info[c].size % a == 0, "aligned class %u wrong for %zu/%zu", c, n, a);
    }
  /* span_is_block_start (and the fast path's copy of it) against division,
   * at every offset inside a span of each class: block starts pass, the
   * tail waste and every offset inside a block fail. */
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    span_t s = {0};
    span_init_small(&s, c, NULL);
    s.start = (char *)((uintptr_t)1 << 40);
    s.npages = class_info[c].pages;
    for (size_t off = 0; off < (size_t)s.npages * PAGE_SIZE; off++) {
      bool want = off % s.block_size == 0 && off / s.block_size < s.count;
      EXPECT(span_is_block_start(&s, s.start + off) == want,
             "class %u (%u B): block-start test wrong at offset %zu", c, s.block_size, off);
      EXPECT(span_fast_block_start(&s, s.start + off) == want,
             "class %u (%u B): fast block-start test wrong at offset %zu", c, s.block_size, off);
    }
  }
  printf("unit_sizeclass: %d failure(s)\n", failures);
  return failures != 0;
}
