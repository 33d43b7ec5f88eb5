/* unit_oom.c - out of memory through the fake OS (os_fail_after): each tier
 * answers NULL with ENOMEM, keeps the blocks it gave, and serves again once
 * the OS gives memory again. */
#include "os.h"
#include "segmap.h"
#include "sizeclass.h"
#include "strata.h"
#include "testlib.h"

/* Out of memory through the fake OS: the huge tier (which always asks the
 * OS; the large tier may have an arena already) fails cleanly with ENOMEM
 * and recovers once the OS gives memory again. */
static int case_oom(void) {
  atomic_store(&os_fail_after, 0);
  size_t sizes[] = { 30 * MiB, 100 * MiB };
  for (size_t i = 0; i < 2; i++) {
    errno = 0;
    void *p = strata_malloc(sizes[i]);
    CHECK(p == NULL && errno == ENOMEM, "malloc(%zu) with no OS memory: %p errno %d", sizes[i], p, errno);
  }
  atomic_store(&os_fail_after, -1);
  void *p = strata_malloc(30 * MiB);
  CHECK(p != NULL, "no recovery after the OS gives memory again");
  strata_free(p);
  return 0;
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
  info("%s tier: ENOMEM after %zu blocks of %zu", tier, n, size);
  CHECK(n < limit && errno == ENOMEM, "%s tier: %zu blocks of %zu and no ENOMEM (errno %d)", tier, n, size, errno);
  atomic_store(&os_fail_after, -1);
  void *p = strata_malloc(size);
  CHECK(p != NULL, "%s tier: no recovery", tier);
  strata_free(p);
  for (size_t i = 0; i < n; i++) strata_free(v[i]);
}

static int case_oom_tiers(void) {
  oom_tier(32 * KiB, 100000, "small");     /* at most 3 GiB: the heap so far, then ENOMEM */
  oom_tier(8 * MiB, 4096, "large");
  return 0;
}

/* With no arena to be had, a large block is a run of the small tier's
 * pages; the statistics count it once, in the large tier. */
static int case_large_run_counted_once(void) {
  strata_free(strata_malloc(64));         /* a small segment with free pages */
  strata_stats_t a, b;
  strata_stats(&a);
  atomic_store(&os_fail_after, 0);
  void *p = strata_malloc(100 * KiB);
  atomic_store(&os_fail_after, -1);
  REQUIRE(p, "no large block out of the small tier's pages");
  if (segmap_kind(p) != SEG_SMALL) {
    strata_free(p);
    return skip("the block came from an arena, not a run");
  }
  strata_stats(&b);
  size_t run = align_up(100 * KiB, PAGE_SIZE);
  CHECK(b.small.active == a.small.active, "small active grew by %zu for a large run",
        b.small.active - a.small.active);
  CHECK(b.large.active - a.large.active == run && b.active - a.active == run,
        "a run of %zu: large active +%zu, total +%zu", run, b.large.active - a.large.active,
        b.active - a.active);
  strata_free(p);
  strata_stats(&b);
  CHECK(b.active == a.active, "active %zu after the free, %zu before", b.active, a.active);
  return 0;
}

int main(int argc, char **argv) {
  class_init();
  static const case_t cases[] = {
    {"huge", case_oom, 60},
    {"small-and-large", case_oom_tiers, 120},
    {"large-run-counted-once", case_large_run_counted_once, 60},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
