/* unit_segmap.c - the segment map (wild pointers, NULL, kinds, set/clear)
 * and spans (carving, local and remote lists, the used invariant, the
 * block-start test) over a page run from the real page heap. */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include "os.h"
#include "pageheap.h"
#include "segmap.h"
#include "sizeclass.h"

static int failures;
#define EXPECT(c, ...) do { if (!(c)) { failures++; if (failures < 20) { printf(__VA_ARGS__); printf("\n"); } } } while (0)

static void test_segmap(void) {
  static char data[64];
  int local;
  const void *wild[] = { NULL, (void *)1, (void *)0xbadbeef, data, &local,
                         (void *)UINTPTR_MAX, (void *)((uintptr_t)1 << 47), (void *)((uintptr_t)1 << 62) };
  for (size_t i = 0; i < sizeof wild / sizeof *wild; i++)
    EXPECT(segmap_kind(wild[i]) == SEG_NONE, "wild pointer %p is ours", wild[i]);
  /* A fake segment-aligned address range: only the map is touched. */
  char *base = (char *)((uintptr_t)0x7e0000000000);
  for (seg_kind_t k = SEG_SMALL; k <= SEG_HUGE; k++) {
    segmap_set(base, 3 * SEG_SIZE, k);
    EXPECT(segmap_kind(base) == SEG_NONE, "segment start belongs to the segment before");
    EXPECT(segmap_kind(base + 1) == k, "first byte after start not kind %d", k);
    EXPECT(segmap_kind(base + 3 * SEG_SIZE) == k, "last byte (p-1 rule) not kind %d", k);
    EXPECT(segmap_kind(base + 3 * SEG_SIZE + 1) == SEG_NONE, "past the end is ours");
    segmap_clear(base + SEG_SIZE, SEG_SIZE, k);
    EXPECT(segmap_kind(base + SEG_SIZE + 17) == SEG_NONE, "cleared segment still ours");
    EXPECT(segmap_kind(base + 17) == k, "clear went too far");
    segmap_clear(base, SEG_SIZE, k);
    segmap_clear(base + 2 * SEG_SIZE, SEG_SIZE, k);
    EXPECT(segmap_kind(base + 17) == SEG_NONE, "clear failed");
  }
}

static void test_span(void) {
  span_init_secrets(0x1234567890abcdefull);
  for (unsigned c = 0; c < CLASS_COUNT; c += 3) {
    span_t *s = pageheap_alloc_span(class_info[c].pages, SPAN_SMALL);
    EXPECT(s != NULL, "no span");
    if (!s) return;
    span_init_small(s, c, NULL);
    EXPECT(span_of(s->start + 1) == s, "pagemap does not point at the span");
    size_t taken = 0;
    block_t *list;
    uint32_t n;
    void **blocks = calloc(s->count, sizeof *blocks);
    while ((list = span_take_free(s, &n))) {
      size_t listed = 0;
      for (block_t *b = list; b; b = block_next(b), listed++) {
        EXPECT(span_is_block_start(s, b), "carved block %p not a block start", (void *)b);
        EXPECT(taken < s->count, "more blocks than fit");
        if (taken < s->count) blocks[taken++] = b;
      }
      EXPECT(listed == n, "class %u: a take of %zu blocks counted %u", c, listed, n);
    }
    EXPECT(taken == s->count && s->used == s->count, "class %u: took %zu of %u", c, taken, s->count);
    EXPECT(!span_is_block_start(s, (char *)blocks[0] + 16) || s->block_size == 16, "interior accepted");
    EXPECT(!span_is_block_start(s, s->start + (size_t)s->count * s->block_size), "tail accepted");
    /* half back locally, half remotely: all must come back, used reaches 0 */
    for (size_t i = 0; i < taken; i++) {
      if (i % 2) { block_set_next(blocks[i], s->local_free); s->local_free = blocks[i]; s->used--; }
      else span_push_remote(s, blocks[i]);
    }
    EXPECT(span_drain_remote(s, NULL, 0) == (taken + 1) / 2, "remote drain count");
    EXPECT(s->used == 0, "class %u: used %u after all frees", c, s->used);
    size_t again = 0;
    for (block_t *b = span_take_free(s, &n); b; b = block_next(b)) again++;
    EXPECT(again == taken && n == taken, "class %u: %zu blocks back of %zu (counted %u)", c, again, taken, n);
    free(blocks);
    pageheap_free_span(s);
  }
}

/* Out of memory through the fake OS: the huge tier (which always asks the
 * OS; the large tier may have an arena already) fails cleanly with ENOMEM
 * and recovers once the OS gives memory again. */
static void test_oom(void) {
  atomic_store(&os_fail_after, 0);
  size_t sizes[] = { 30 * MiB, 100 * MiB };
  for (size_t i = 0; i < 2; i++) {
    errno = 0;
    void *p = strata_malloc(sizes[i]);
    EXPECT(p == NULL && errno == ENOMEM, "malloc(%zu) with no OS memory: %p errno %d", sizes[i], p, errno);
  }
  atomic_store(&os_fail_after, -1);
  void *p = strata_malloc(30 * MiB);
  EXPECT(p != NULL, "no recovery after the OS gives memory again");
  strata_free(p);
}

/* The small and large tiers: allocate until what is already mapped runs out
 * and the (failing) OS is asked; that must be NULL/ENOMEM, every earlier
 * block usable, and allocation must work again once the OS recovers. */
static void oom_tier(size_t size, size_t limit, const char *tier) {
  static void *v[1 << 17];
  size_t n = 1;
  v[0] = strata_malloc(size);             /* the tier has memory of its own */
  atomic_store(&os_fail_after, 0);
  for (; n < limit && n < sizeof v / sizeof *v; n++) {
    errno = 0;
    v[n] = strata_malloc(size);
    if (!v[n]) break;
    memset(v[n], 0x5a, size);
  }
  printf("%s tier: ENOMEM after %zu blocks of %zu\n", tier, n, size);
  EXPECT(n < limit && errno == ENOMEM, "%s tier: %zu blocks of %zu and no ENOMEM (errno %d)", tier, n, size, errno);
  atomic_store(&os_fail_after, -1);
  void *p = strata_malloc(size);
  EXPECT(p != NULL, "%s tier: no recovery", tier);
  strata_free(p);
  for (size_t i = 0; i < n; i++) strata_free(v[i]);
}

static void test_oom_tiers(void) {
  oom_tier(32 * KiB, 100000, "small");     /* at most 3 GiB: the heap so far, then ENOMEM */
  oom_tier(8 * MiB, 4096, "large");
}

int main(void) {
  class_init();
  test_segmap();
  test_span();
  test_oom();
  test_oom_tiers();
  printf("unit_segmap: %d failure(s)\n", failures);
  return failures != 0;
}
