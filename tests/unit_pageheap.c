/* unit_pageheap.c - the page heap alone: freed runs coalesce with their
 * free neighbours, the decay purges dirty runs only once they are the decay
 * time old and leaves the rest, clean runs are counted, and the page heap's
 * invariants hold after each step (pageheap_valid). */
#include "os.h"
#include "pageheap.h"
#include "sizeclass.h"
#include "testlib.h"

static size_t dirty_bytes(void) {
  tier_stats_t st = { 0 };
  pageheap_tier.stats(&st);
  return st.dirty;
}

/* Three runs cut one after another from a free run are adjacent; freed in
 * the order first, last, middle, they make one run again, which a request
 * of their total length gets back at the first one's start. */
static int case_coalesce(void) {
  span_t *a = pageheap_alloc_span(3, SPAN_SMALL), *b = pageheap_alloc_span(5, SPAN_SMALL),
         *c = pageheap_alloc_span(2, SPAN_SMALL);
  REQUIRE(a && b && c, "no runs");
  char *start = a->start;
  if (b->start != start + 3 * PAGE_SIZE || c->start != b->start + 5 * PAGE_SIZE)
    return skip("the three runs were not cut from one free run");
  CHECK(pageheap_valid(), "invalid after the allocations");
  pageheap_free_span(a);
  pageheap_free_span(c);
  CHECK(pageheap_valid(), "invalid with two separate free runs");
  span_t *mid = span_of(start + 3 * PAGE_SIZE + 1);
  CHECK(mid == b && b->kind == SPAN_SMALL, "the middle run lost its span");
  pageheap_free_span(b);
  CHECK(pageheap_valid(), "invalid after the merge");
  span_t *run = span_of(start + 1);
  CHECK(run->kind == SPAN_FREE_RUN && run->start == start && run->npages >= 10,
        "not one free run of 10 pages or more at the first one's start: kind %u, %u pages",
        run->kind, run->npages);
  span_t *all = pageheap_alloc_span(10, SPAN_SMALL);
  CHECK(all && all->start == start, "a run of 10 pages is not at %p but at %p", (void *)start,
        all ? (void *)all->start : NULL);
  if (all) pageheap_free_span(all);
  return 0;
}

/* A freed run is dirty; the decay leaves it while it is younger than the
 * age and purges it after (its pages are no longer resident). */
static int case_decay(void) {
  pageheap_tier.trim();                   /* start with nothing dirty */
  CHECK(dirty_bytes() == 0, "%zu dirty bytes after a trim", dirty_bytes());
  span_t *s = pageheap_alloc_span(16, SPAN_SMALL);
  REQUIRE(s, "no run");
  char *p = s->start;
  memset(p, 0x5a, 16 * PAGE_SIZE);
  uint32_t freed_at = os_now_ms();
  pageheap_free_span(s);
  CHECK(dirty_bytes() >= 16 * PAGE_SIZE, "a freed run of 16 pages is not dirty (%zu)", dirty_bytes());
  bool younger = false;
  pageheap_tier.decay(freed_at, 1000, &younger);
  CHECK(younger && dirty_bytes() >= 16 * PAGE_SIZE, "a run freed just now was purged (younger %d)", younger);
  CHECK(os_resident(p, 16 * PAGE_SIZE) == 16 * PAGE_SIZE, "its pages went before the decay");
  younger = false;
  pageheap_tier.decay(freed_at + 1001, 1000, &younger);
  CHECK(dirty_bytes() == 0, "%zu dirty bytes after the decay time", dirty_bytes());
  CHECK(os_resident(p, 16 * PAGE_SIZE) == 0, "%zu bytes still resident after the decay",
        os_resident(p, 16 * PAGE_SIZE));
  CHECK(pageheap_valid(), "invalid after the decay");
  return 0;
}

/* A run of pages never used (or purged) counts as clean when handed out;
 * a dirty one does not. */
static int case_clean_runs(void) {
  pageheap_tier.trim();
  uint32_t before = atomic_load_relaxed(&pageheap_clean_runs);
  span_t *s = pageheap_alloc_span(4, SPAN_SMALL);
  REQUIRE(s, "no run");
  CHECK(atomic_load_relaxed(&pageheap_clean_runs) == before + 1 && !s->dirty, "a clean run was not counted");
  memset(s->start, 1, 4 * PAGE_SIZE);
  char *p = s->start;
  pageheap_free_span(s);
  span_t *again = pageheap_alloc_span(4, SPAN_SMALL);
  REQUIRE(again, "no run");
  CHECK(again->start == p && again->dirty, "the freed run did not come back dirty");
  CHECK(atomic_load_relaxed(&pageheap_clean_runs) == before + 1, "a dirty run was counted as clean");
  pageheap_free_span(again);
  return 0;
}

int main(int argc, char **argv) {
  class_init();
  static const case_t cases[] = {
    {"coalesce", case_coalesce, 30},
    {"decay", case_decay, 30},
    {"clean-runs", case_clean_runs, 30},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
