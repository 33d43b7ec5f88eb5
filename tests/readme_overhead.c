/* readme_overhead.c - the buddy allocator's metadata overhead, for the
 * README's table (test_readme.py overhead compares the two).
 *
 * Prints "min_block free_bytes region_size" for each min_block from 16 to
 * 4096: what strata_buddy_free_bytes gives right after strata_buddy_init on
 * a 1 MiB region with no prefix.
 */
#include <stdio.h>

#include <strata.h>

static _Alignas(16) char region[1 << 20];

int main(void) {
  for (size_t min_block = 16; min_block <= 4096; min_block *= 2) {
    strata_buddy *b = strata_buddy_init(region, sizeof region, 0, min_block);
    if (!b) {
      fprintf(stderr, "strata_buddy_init(1 MiB, min_block %zu) failed\n", min_block);
      return 1;
    }
    printf("%zu %zu %zu\n", min_block, strata_buddy_free_bytes(b), sizeof region);
  }
  return 0;
}
