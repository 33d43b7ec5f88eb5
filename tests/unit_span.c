/* unit_span.c - spans over a page run from the real page heap: carving
 * every class, the local and remote free lists, the used count, and the
 * block-start test. */
#include "pageheap.h"
#include "sizeclass.h"
#include "testlib.h"

static int case_span(void) {
  span_init_secrets(0x1234567890abcdefull);
  for (unsigned c = 0; c < CLASS_COUNT; c += 3) {
    span_t *s = pageheap_alloc_span(class_info[c].pages, SPAN_SMALL);
    REQUIRE(s != NULL, "no span");
    span_init_small(s, c, NULL);
    CHECK(span_of(s->start + 1) == s, "pagemap does not point at the span");
    size_t taken = 0;
    block_t *list;
    uint32_t n;
    void **blocks = calloc(s->count, sizeof *blocks);
    while ((list = span_take_free(s, &n))) {
      size_t listed = 0;
      for (block_t *b = list; b; b = block_next(b), listed++) {
        CHECK(span_is_block_start(s, b), "carved block %p not a block start", (void *)b);
        CHECK(taken < s->count, "more blocks than fit");
        if (taken < s->count) blocks[taken++] = b;
      }
      CHECK(listed == n, "class %u: a take of %zu blocks counted %u", c, listed, n);
    }
    CHECK(taken == s->count && s->used == s->count, "class %u: took %zu of %u", c, taken, s->count);
    CHECK(!span_is_block_start(s, (char *)blocks[0] + 16) || s->block_size == 16, "interior accepted");
    CHECK(!span_is_block_start(s, s->start + (size_t)s->count * s->block_size), "tail accepted");
    /* half back locally, half remotely: all must come back, used reaches 0 */
    for (size_t i = 0; i < taken; i++) {
      if (i % 2) { block_set_next(blocks[i], s->local_free); s->local_free = blocks[i]; s->used--; }
      else span_push_remote(s, blocks[i]);
    }
    CHECK(span_drain_remote(s, NULL, 0) == (taken + 1) / 2, "remote drain count");
    CHECK(s->used == 0, "class %u: used %u after all frees", c, s->used);
    size_t again = 0;
    for (block_t *b = span_take_free(s, &n); b; b = block_next(b)) again++;
    CHECK(again == taken && n == taken, "class %u: %zu blocks back of %zu (counted %u)", c, again, taken, n);
    free(blocks);
    pageheap_free_span(s);
  }
  return 0;
}

int main(int argc, char **argv) {
  class_init();
  static const case_t cases[] = {
    {"carve-and-free", case_span, 60},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
