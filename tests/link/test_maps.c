/* test_maps.c - the number of memory mappings stays small.
 *
 * usage: test_maps [MIB] [SEED] (defaults 1024 and 42)
 *
 * Linux limits a process to vm.max_map_count mappings (65530 by default);
 * an allocator that creates many small mappings (or splits its mappings
 * with mprotect/madvise patterns the kernel cannot merge) can push a
 * program over that limit. This test builds a heap of MIB MiB (1 GiB by
 * default) from a seeded random mix of sizes between 16 B and 32 MiB,
 * freeing a random third of the blocks on the way (holes everywhere),
 * writes one byte every 64 KiB of each block (enough to make the kernel
 * populate the heap's mappings, without paying for 1 GiB of page faults),
 * and counts the lines of /proc/self/maps:
 * before, with the heap built, after freeing half of it (in random order),
 * and after freeing everything and malloc_trim. It fails when any count
 * exceeds 1000 mappings, or when a block was damaged.
 * Built linked with libstrata.so and for LD_PRELOAD (see meson.build).
 */
#include "link_common.h"   /* first: it defines _GNU_SOURCE */

#include <malloc.h>
#include <stdint.h>

#define MAX_MAPPINGS 1000

struct block {
  unsigned char *p;
  size_t n;
};

/* A size between 16 B and 32 MiB: mostly small, as in real programs, but
 * every tier is used: 80% 16 B-1 KiB, 15% 1-256 KiB, 4.5% 256 KiB-4 MiB,
 * 0.5% 4-32 MiB (log-uniform inside each range). */
static size_t random_size(uint64_t *r) {
  unsigned pick = (unsigned)(rnd(r) % 1000);
  unsigned lo, hi;   /* as powers of two */
  if (pick < 800) lo = 4, hi = 10;
  else if (pick < 950) lo = 10, hi = 18;
  else if (pick < 995) lo = 18, hi = 22;
  else lo = 22, hi = 25;
  /* 2^lo .. 2^hi, log-uniform: a random exponent, then a random mantissa. */
  unsigned e = lo + (unsigned)(rnd(r) % (hi - lo));
  size_t base = (size_t)1 << e;
  return base + (size_t)(rnd(r) % base);
}

/* Tag a block: the first and last 8 bytes and one byte every 64 KiB. */
#define STRIDE 65536
static void touch(struct block *b, size_t index) {
  unsigned char tag = (unsigned char)(index * 131 + 7);
  for (size_t i = 0; i < b->n; i += STRIDE) b->p[i] = tag;
  memcpy(b->p, &index, b->n < 8 ? b->n : 8);
  b->p[b->n - 1] = tag;
}
static int intact(const struct block *b, size_t index) {
  unsigned char tag = (unsigned char)(index * 131 + 7);
  size_t head = b->n < 8 ? b->n : 8;
  if (memcmp(b->p, &index, head) || b->p[b->n - 1] != tag) return 0;
  for (size_t i = STRIDE; i < b->n; i += STRIDE)
    if (b->p[i] != tag) return 0;
  return 1;
}

int main(int argc, char **argv) {
  link_setup("test_maps");
  size_t target = (size_t)(argc > 1 ? atol(argv[1]) : 1024) << 20;
  uint64_t rng = (uint64_t)(argc > 2 ? atol(argv[2]) : 42);
  if (!target || !rng) link_die("usage: %s [MIB] [SEED]", argv[0]);

  long maps_before = map_count();

  /* The block table grows as needed (it is allocated with malloc too). */
  size_t cap = 1 << 16, count = 0, live_bytes = 0, max_live = 0;
  struct block *blocks = malloc(cap * sizeof *blocks);
  if (!blocks) link_die("out of memory for the block table");
  while (live_bytes < target) {
    if (count == cap) {
      cap *= 2;
      struct block *nb = realloc(blocks, cap * sizeof *blocks);
      if (!nb) link_die("out of memory for the block table");
      blocks = nb;
    }
    struct block b = {NULL, random_size(&rng)};
    b.p = malloc(b.n);
    if (!b.p) link_die("malloc(%zu) failed with %zu MiB live", b.n, live_bytes >> 20);
    CHECK(link_owns(b.p) == 1, "malloc(%zu) = %p is not Strata's", b.n, (void *)b.p);
    touch(&b, count);
    blocks[count++] = b;
    live_bytes += b.n;
    /* Free a random earlier block one time in three. */
    if (rnd(&rng) % 3 == 0) {
      size_t k = rnd(&rng) % count;
      if (blocks[k].p) {
        CHECK(intact(&blocks[k], k), "block %zu damaged", k);
        free(blocks[k].p);
        blocks[k].p = NULL;
        live_bytes -= blocks[k].n;
      }
    }
    if (live_bytes > max_live) max_live = live_bytes;
  }
  long maps_full = map_count();
  long rss_full = status_kib("VmRSS:");

  /* Free about half, in random order, checking each block. */
  for (size_t done = 0; done < count / 2; done++) {
    size_t k = rnd(&rng) % count;
    if (!blocks[k].p) continue;
    CHECK(intact(&blocks[k], k), "block %zu damaged", k);
    free(blocks[k].p);
    blocks[k].p = NULL;
    live_bytes -= blocks[k].n;
  }
  long maps_half = map_count();

  size_t live_blocks = 0;
  for (size_t k = 0; k < count; k++)
    if (blocks[k].p) {
      live_blocks++;
      CHECK(intact(&blocks[k], k), "block %zu damaged", k);
      free(blocks[k].p);
    }
  free(blocks);
  malloc_trim(0);
  long maps_empty = map_count();

  info("%zu allocations, %zu MiB live at most (RSS %ld MiB); /proc/self/maps "
       "lines: %ld before, %ld with the heap, %ld after freeing half, %ld after freeing "
       "everything and malloc_trim",
       count, max_live >> 20, rss_full >> 10, maps_before, maps_full, maps_half, maps_empty);
  CHECK(maps_full <= MAX_MAPPINGS, "%ld mappings with the heap (limit %d)", maps_full,
        MAX_MAPPINGS);
  CHECK(maps_half <= MAX_MAPPINGS, "%ld mappings after freeing half (limit %d)", maps_half,
        MAX_MAPPINGS);
  CHECK(maps_empty <= MAX_MAPPINGS, "%ld mappings after freeing all (limit %d)", maps_empty,
        MAX_MAPPINGS);
  return checks_result("test_maps");
}
