/* test_large.c - the large tier (32 KiB to 16 MiB): a request goes into the
 * resident pages a freed block left before clean pages are faulted in.
 * Through the strata_ API, so it also runs in sanitizer builds. */
#include "strata.h"
#include "testlib.h"

/* The large tier reuses the pages a freed block left resident before it
 * faults in clean ones: a 1 MiB block (kept apart from its buddy by a live
 * neighbour) is free and purged, a dirty 8 MiB block is freed, and the
 * next request of 1 MiB goes into the dirty pages. The buddy's own choice,
 * the smallest free order, took the clean block: resident memory grew by
 * it while the dirty pages waited for the decay. Tried again if the decay
 * purged the freed block in between (it must have cooled for two passes). */
static int case_large_reuses_dirty(void) {
  enum { SMALL = 900 << 10, BIG = 7 << 20 };
  bool inside = false;
  size_t before = 0, after = 0;
  for (int attempt = 0; attempt < 3 && !inside; attempt++) {
    unsigned char *s1 = strata_malloc(SMALL), *s2 = strata_malloc(SMALL), *big = strata_malloc(BIG);
    memset(big, 1, BIG);
    strata_free(s1);
    strata_collect();                   /* every free page of the arenas is clean */
    strata_free(big);
    before = stats_now().large.resident;
    unsigned char *p = strata_malloc(SMALL);
    memset(p, 2, SMALL);
    after = stats_now().large.resident;
    inside = p >= big && p < big + BIG;
    strata_free(p);
    strata_free(s2);
  }
  info("large tier: a 1 MiB request after a dirty 8 MiB free: resident %zu, then %zu", before, after);
  CHECK(inside, "a 1 MiB block was not taken from the freed dirty 8 MiB block");
  CHECK(after <= before + (64 << 10), "large resident grew from %zu to %zu though dirty free pages waited",
        before, after);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"reuses-dirty-pages", case_large_reuses_dirty, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
