/* unit_arena.c - one buddy arena alone (arena.c): a block goes where freed
 * pages are still dirty rather than onto clean ones, calloc learns which
 * pages to clear, a trim purges every free dirty page, resizing in place
 * keeps the usable pages, and arena_valid holds after each step. */
#include "arena.h"
#include "os.h"
#include "sizeclass.h"
#include "testlib.h"

#include <string.h>

/* A block of 2^order pages, `pages` used, where arena_pick puts it; the
 * dirty pages it reported in *dirty. */
static char *take(arena_t *a, unsigned order, size_t pages, size_t *dirty) {
  lock_acquire(arena_lock(a));
  arena_pick_t pick = arena_pick(a, order, pages);
  char *p = pick.at ? arena_take(a, pick, order, pages, NULL) : NULL;
  lock_release(arena_lock(a));
  if (dirty) *dirty = pick.dirty;
  return p;
}

/* Freed pages come back before clean ones: blocks of one and of eight
 * pages go inside a freed block of sixteen, though clean free blocks of
 * their own orders exist (the buddy's own choice), and a block of sixteen
 * goes at its place. */
static int case_dirty_first(void) {
  arena_t *a = arena_new();
  REQUIRE(a, "no arena");
  size_t d1, d8, d16;
  char *first = take(a, 0, 1, NULL);        /* a free page beside the metadata, if any */
  char *x = take(a, 4, 16, NULL), *y = take(a, 4, 16, NULL);
  char *split = take(a, 0, 1, NULL);        /* leaves clean free blocks of 1 to 8 pages */
  REQUIRE(first && x && y && split, "no blocks");
  memset(x, 1, 16 * OS_PAGE);
  CHECK(arena_valid(a), "invalid with three blocks");
  arena_free(a, x, "free");
  CHECK(arena_valid(a), "invalid after a free");
  char *one = take(a, 0, 1, &d1), *eight = take(a, 3, 8, &d8);
  CHECK(one >= x && one < x + 16 * OS_PAGE && d1 == 1,
        "a one-page block went to %p (%zu dirty), outside the freed block %p", (void *)one, d1, (void *)x);
  CHECK(eight >= x && eight < x + 16 * OS_PAGE && d8 == 8,
        "an eight-page block went to %p (%zu dirty), outside the freed block %p", (void *)eight, d8, (void *)x);
  CHECK(arena_valid(a), "invalid after the reuse");
  arena_free(a, one, "free");
  arena_free(a, eight, "free");
  char *again = take(a, 4, 16, &d16);
  CHECK(again == x && d16 == 16, "a block of the freed order went to %p (%zu dirty pages), not %p",
        (void *)again, d16, (void *)x);
  arena_free(a, again, "free");
  arena_free(a, y, "free");
  arena_free(a, split, "free");
  arena_free(a, first, "free");
  CHECK(arena_valid(a), "invalid with every block free");
  return 0;
}

/* A new arena (*a) and in it a block of 2^order pages, `pages` used, whose
 * first `written` pages hold `byte`; NULL when either cannot be had. */
static char *written_block(arena_t **a, unsigned order, size_t pages, size_t written, int byte) {
  *a = arena_new();
  char *p = *a ? take(*a, order, pages, NULL) : NULL;
  if (p) memset(p, byte, written * OS_PAGE);
  return p;
}

/* calloc's bitmap says which used pages may be non-zero; a trim purges
 * every free dirty page, after which a block is clean. */
static int case_calloc_and_trim(void) {
  arena_t *a;
  char *p = written_block(&a, 3, 8, 3, 7);  /* only 3 of its 8 pages are written */
  REQUIRE(p, "no arena or no block");
  arena_free(a, p, "free");
  lock_acquire(arena_lock(a));
  arena_pick_t pick = arena_pick(a, 3, 8);
  uint64_t dirty[1] = { 0 };
  char *q = arena_take(a, pick, 3, 8, dirty);
  lock_release(arena_lock(a));
  CHECK(q == p && dirty[0] == 0xff, "reuse of the dirty block: at %p (not %p), dirty bits %#llx",
        (void *)q, (void *)p, (unsigned long long)dirty[0]);
  arena_free(a, q, "free");
  size_t purged = arena_trim(a);
  CHECK(purged >= 8 * OS_PAGE, "the trim purged %zu bytes", purged);
  CHECK(os_resident(p, 8 * OS_PAGE) == 0, "%zu bytes still resident after the trim", os_resident(p, 8 * OS_PAGE));
  size_t d;
  char *r = take(a, 3, 8, &d);
  CHECK(r && d == 0, "a block after the trim has %zu dirty pages", d);
  if (r) {
    CHECK(r[0] == 0 && r[3 * OS_PAGE - 1] == 0, "a purged page kept its bytes");
    arena_free(a, r, "free");
  }
  CHECK(arena_valid(a), "invalid after the trim");
  return 0;
}

/* A block freed after a decay pass read its clock is hot to that pass: the
 * pass leaves its pages (a free stamped later than the pass's `now` is no
 * age, not 49 days' worth). */
static int case_freed_after_the_clock(void) {
  arena_t *a;
  char *p = written_block(&a, 3, 8, 8, 5);
  REQUIRE(p, "no arena or no block");
  uint32_t now = os_now_ms();
  os_sleep_ms(20);
  arena_free(a, p, "free");
  bool younger = false;
  size_t purged = arena_decay(a, now, 10000, &younger);
  CHECK(purged == 0 && younger, "a pass purged %zu bytes freed after it read its clock", purged);
  CHECK(os_resident(p, 8 * OS_PAGE) == 8 * OS_PAGE, "the freed pages are not resident");
  CHECK(arena_valid(a), "invalid after the pass");
  return 0;
}

/* In place: a block shrinks, its dropped pages purged, and grows back into
 * the buddy it gave up; its usable size follows the request, rounded to
 * pages. Large blocks are above SMALL_MAX (32 KiB: 8 pages). */
static int case_resize(void) {
  arena_t *a;
  char *p = written_block(&a, 5, 32, 32, 9);
  REQUIRE(p, "no arena or no block");
  /* To 9 pages: the block halves to 16 pages, and its pages 9 to 15 are
   * purged at once (the half given back is the decay's). */
  CHECK(arena_resize(a, p, 9 * OS_PAGE), "could not shrink");
  CHECK(arena_usable(a, p, "usable") == 9 * OS_PAGE, "usable %zu after shrinking, not 9 pages",
        arena_usable(a, p, "usable"));
  CHECK(os_resident(p + 9 * OS_PAGE, 7 * OS_PAGE) == 0, "the dropped pages inside the block stay resident");
  CHECK(p[9 * OS_PAGE - 1] == 9, "shrinking lost the bytes it kept");
  CHECK(arena_valid(a), "invalid after shrinking");
  CHECK(arena_resize(a, p, 31 * OS_PAGE + 1), "could not grow back into the free buddy");
  CHECK(arena_usable(a, p, "usable") == 32 * OS_PAGE, "usable %zu after growing, not 32 pages",
        arena_usable(a, p, "usable"));
  CHECK(p[0] == 9 && p[9 * OS_PAGE - 1] == 9, "growing lost the bytes");
  CHECK(arena_valid(a), "invalid after growing");
  arena_free(a, p, "free");
  CHECK(arena_valid(a), "invalid after the free");
  return 0;
}

int main(int argc, char **argv) {
  class_init();
  static const case_t cases[] = {
    {"dirty-first", case_dirty_first, 30},
    {"calloc-and-trim", case_calloc_and_trim, 30},
    {"resize", case_resize, 30},
    {"freed-after-the-clock", case_freed_after_the_clock, 30},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
