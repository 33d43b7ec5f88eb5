/* unit_bcache.c - the block cache's bounds (bcache.c) on the calling
 * thread's real heap: a class whose cache overflows and then runs empty
 * doubles its bound, up to its cache_max and within the per-heap budget; a
 * gc round halves a grown bound that had no refill since; a flush gives
 * every cached block back and resets the bound; heap_valid holds after
 * each step. */
#include "heap.h"
#include "sizeclass.h"
#include "strata.h"
#include "testlib.h"

/* The per-heap budget of bcache.c (BCACHE_EXTRA_MAX). */
#define EXTRA_MAX ((uint32_t)4 << 20)

/* Free n blocks of `size` at once, then allocate them again: with n past
 * the cache's bound, the frees overflow it and the mallocs run it empty,
 * which refills it. */
static void *p[1 << 20];                         /* not from the heap under test */
static void overflow_and_refill(size_t size, size_t n) {
  REQUIRE(n <= sizeof p / sizeof p[0], "%zu blocks: too many", n);
  for (size_t i = 0; i < n; i++) REQUIRE((p[i] = strata_malloc(size)), "malloc(%zu) failed", size);
  for (size_t i = 0; i < n; i++) strata_free(p[i]);
  for (size_t i = 0; i < n; i++) REQUIRE((p[i] = strata_malloc(size)), "malloc(%zu) failed", size);
  for (size_t i = 0; i < n; i++) strata_free(p[i]);
}

static heap_t *my_heap(void) {
  strata_free(strata_malloc(1));                 /* the thread's heap exists */
  return heap_tls;
}

/* Grows: a bound doubles at a refill after an overflow; never past
 * cache_max. */
static int case_grow(void) {
  unsigned c = class_of(64);
  heap_t *h = my_heap();
  bcache_flush(h, c);
  uint32_t base = class_info[c].cache, max = class_info[c].cache_max;
  REQUIRE(base < max, "class %u cannot grow (cache %u, max %u)", c, base, max);
  REQUIRE(h->free_bound[c] == base, "bound %u after a flush, not %u", h->free_bound[c], base);
  uint32_t last = base;
  for (int round = 0; round < 16; round++) {
    overflow_and_refill(64, 4 * (size_t)h->free_bound[c] + class_info[c].count);
    uint32_t now = h->free_bound[c];
    CHECK(now <= max, "round %d: bound %u past cache_max %u", round, now, max);
    CHECK(now == last || now >= 2 * last || now == max,
          "round %d: bound went from %u to %u (not doubled, not at max)", round, last, now);
    last = now;
    CHECK(heap_valid(h), "round %d: heap invalid", round);
  }
  CHECK(last > base, "the bound never grew from %u", base);
  bcache_flush(h, c);
  CHECK(h->free_bound[c] == base && h->free[c] == NULL && h->room[c] == (intptr_t)base,
        "after the flush: bound %u, room %zd, cache %s", h->free_bound[c], (ssize_t)h->room[c],
        h->free[c] ? "not empty" : "empty");
  CHECK(heap_valid(h), "heap invalid after the flush");
  return 0;
}

/* Idle: a gc round halves a grown bound that had no refill, leaves one that
 * had, and gives the blocks past the new bound back. */
static int case_gc(void) {
  unsigned c = class_of(128);
  heap_t *h = my_heap();
  bcache_flush(h, c);
  uint32_t base = class_info[c].cache;
  for (int i = 0; i < 4; i++) overflow_and_refill(128, 4 * (size_t)h->free_bound[c] + class_info[c].count);
  uint32_t grown = h->free_bound[c];
  REQUIRE(grown >= 2 * base, "the bound did not grow (%u, base %u)", grown, base);
  h->refilled |= (uint64_t)1 << c;
  bcache_gc(h);
  CHECK(h->free_bound[c] == grown, "a bound refilled lately shrank from %u to %u", grown, h->free_bound[c]);
  h->refilled = 0;
  bcache_gc(h);
  uint32_t want = grown / 2 > base ? grown / 2 : base;
  CHECK(h->free_bound[c] == want, "idle: bound %u, not %u", h->free_bound[c], want);
  CHECK(h->free_bound[c] - h->room[c] <= (intptr_t)h->free_bound[c] + class_info[c].count,
        "more cached than the bound plus a span");
  CHECK(heap_valid(h), "heap invalid after the gc");
  for (int i = 0; i < 16 && h->free_bound[c] > base; i++) {
    h->refilled = 0;
    bcache_gc(h);
  }
  CHECK(h->free_bound[c] == base, "repeated idle rounds left the bound at %u, not %u", h->free_bound[c], base);
  CHECK(heap_valid(h), "heap invalid after the gc rounds");
  return 0;
}

/* Budget: growth over every class stops at the per-heap budget. */
static int case_budget(void) {
  heap_t *h = my_heap();
  for (unsigned c = 0; c < CLASS_COUNT; c++) bcache_flush(h, c);
  CHECK(h->free_extra == 0, "%u extra bytes after flushing every class", h->free_extra);
  for (int round = 0; round < 6; round++)
    for (unsigned c = 0; c < CLASS_COUNT; c++) {
      size_t n = 2 * (size_t)h->free_bound[c] + class_info[c].count;
      if (n * class_info[c].size > ((size_t)64 << 20)) continue;
      overflow_and_refill(class_info[c].size, n);
      CHECK(h->free_extra <= EXTRA_MAX, "class %u: %u extra bytes, past the budget", c, h->free_extra);
    }
  CHECK(h->free_extra > EXTRA_MAX / 2, "the bounds grew by only %u bytes", h->free_extra);
  CHECK(heap_valid(h), "heap invalid after growing every class");
  for (unsigned c = 0; c < CLASS_COUNT; c++) bcache_flush(h, c);
  CHECK(h->free_extra == 0, "%u extra bytes after the flushes", h->free_extra);
  CHECK(heap_valid(h), "heap invalid after the flushes");
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"grow", case_grow, 60},
    {"gc", case_gc, 60},
    {"budget", case_budget, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
