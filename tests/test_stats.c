/* test_stats.c - the statistics add up: strata_stats counts every block in
 * its tier and class, nmalloc counts every malloc, allocated <= active <=
 * mapped, and allocated returns to where it was after the frees. Through
 * the strata_ API, so it also runs in sanitizer builds. */
#include "strata.h"
#include "testlib.h"

/* 3000 blocks of every tier: each counted at its usable size (the class
 * size for a small request) in its tier and its class. */
static int case_allocated_adds_up(void) {
  enum { N = 3000 };
  static void *p[N];
  static size_t want[N];
  /* Freeing 8 MiB starts the purge thread, whose creation allocates
   * (glibc's thread descriptor): have that happen first. */
  strata_free(strata_malloc(9 << 20));
  strata_stats_t before = stats_now();
  size_t small = 0, large = 0, huge = 0;
  srand(7);
  for (int i = 0; i < N; i++) {
    size_t size = i % 100 == 99 ? (size_t)(40 << 10) + (size_t)rand() % (2 << 20)  /* large */
                : (size_t)rand() % 2048 + 1;
    if (i == N - 1) size = (size_t)20 << 20;                                    /* huge */
    p[i] = strata_malloc(size);
    want[i] = strata_malloc_usable_size(p[i]);
    if (size <= 32768) small += want[i];
    else if (size < ((size_t)16 << 20)) large += want[i];
    else huge += want[i];
  }
  strata_stats_t mid = stats_now();
  CHECK(mid.small.allocated - before.small.allocated == small,
        "small allocated grew by %zu, expected %zu", mid.small.allocated - before.small.allocated, small);
  CHECK(mid.large.allocated - before.large.allocated == large,
        "large allocated grew by %zu, expected %zu", mid.large.allocated - before.large.allocated, large);
  CHECK(mid.huge.allocated - before.huge.allocated == huge,
        "huge allocated grew by %zu, expected %zu", mid.huge.allocated - before.huge.allocated, huge);
  CHECK(mid.allocated == mid.small.allocated + mid.large.allocated + mid.huge.allocated, "total != sum of tiers");
  CHECK(mid.small.nmalloc - before.small.nmalloc + mid.large.nmalloc - before.large.nmalloc +
        mid.huge.nmalloc - before.huge.nmalloc == N, "nmalloc did not count %d mallocs", N);
  size_t by_class = 0;
  for (int c = 0; c < STRATA_CLASSES; c++) by_class += mid.classes[c].live * mid.classes[c].size;
  CHECK(by_class == mid.small.allocated, "class table (%zu) != small allocated (%zu)", by_class, mid.small.allocated);
  CHECK(mid.active >= mid.allocated && mid.mapped >= mid.active, "allocated <= active <= mapped violated");
  for (int i = 0; i < N; i++) strata_free(p[i]);
  strata_stats_t after = stats_now();
  CHECK(after.allocated == before.allocated, "allocated %zu after the frees, %zu before", after.allocated, before.allocated);
  strata_stats_print(1);
  return 0;
}

int main(int argc, char **argv) {
  static const case_t cases[] = {
    {"allocated-adds-up", case_allocated_adds_up, 120},
  };
  return cases_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
