/* unit_span_purge.c - a mostly free span gives back the OS pages that hold
 * only free blocks: their blocks leave local_free for the purged bitmap,
 * the span's fast-path limit is 0 while any is purged, its invariant holds
 * (span_valid), and a refill takes the purged blocks back first. */
#include "os.h"
#include "pageheap.h"
#include "sizeclass.h"
#include "sparse.h"
#include "testlib.h"

static int case_purge_free_pages(void) {
  span_init_secrets(0x9e3779b97f4a7c15ull);
  unsigned c = class_of(2048);              /* two blocks to an OS page */
  span_t *s = pageheap_alloc_span(class_info[c].pages, SPAN_SMALL);
  REQUIRE(s, "no span");
  span_init_small(s, c, NULL);
  REQUIRE(s->count <= SPAN_PURGE_MAX_BLOCKS, "class %u has %u blocks", c, s->count);
  block_t *blocks[SPAN_PURGE_MAX_BLOCKS];
  uint32_t taken = 0, n;
  for (block_t *list; (list = span_take_free(s, &n));)
    for (block_t *b = list, *next; b; b = next) {
      next = block_next(b);
      blocks[taken++] = b;
      memset((char *)b + sizeof(block_t), 0x77, s->block_size - sizeof(block_t));
    }
  REQUIRE(taken == s->count, "took %u of %u", taken, s->count);
  /* Keep block 0 only: every OS page but the first holds free blocks only. */
  for (uint32_t i = taken; i-- > 1;) {
    block_set_next(blocks[i], s->local_free);
    s->local_free = blocks[i];
    s->used--;
  }
  CHECK(span_valid(s), "span invalid before the purge");
  CHECK(sparse_is(s), "a span with one block of %u in use is not sparse", s->count);
  size_t span_bytes = (size_t)s->count * s->block_size, pages = span_bytes / OS_PAGE;
  uint32_t purged = span_purge_free_pages(s);
  CHECK(purged == pages - 1, "%u OS pages purged, expected %zu", purged, pages - 1);
  CHECK(__builtin_popcountll(s->purged) == (int)(taken - 2), "%d blocks marked purged, expected %u",
        __builtin_popcountll(s->purged), taken - 2);
  CHECK(s->fast_limit == 0, "the fast-path limit is not 0 while blocks are purged");
  CHECK(span_valid(s), "span invalid after the purge");
  CHECK(os_resident(s->start + OS_PAGE, span_bytes - OS_PAGE) == 0, "purged pages still resident");
  CHECK(!span_block_purged(s, blocks[1]), "the free block beside the live one was purged");
  /* A refill takes the local block first, then the purged ones. */
  block_t *list = span_take_free(s, &n);
  CHECK(list == blocks[1] && n == 1, "the refill did not take the one listed block first (%u)", n);
  list = span_take_free(s, &n);
  CHECK(list && n == taken - 2 && s->purged == 0, "the purged blocks did not come back (%u)", n);
  CHECK(s->fast_limit == span_block_limit(s), "the fast-path limit was not restored");
  CHECK(s->used == s->count && span_valid(s), "span invalid after the refill (used %u)", s->used);
  pageheap_free_span(s);
  return 0;
}

int main(int argc, char **argv) {
  class_init();
  static const case_t cases[] = {
    {"purge-free-pages", case_purge_free_pages, 30},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
