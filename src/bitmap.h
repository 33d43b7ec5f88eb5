/* bitmap.h - the one bitmap: arrays of 64-bit words, bit i in word i / 64,
 * worked on a word at a time over ranges [from, to). Used by the page heap
 * (the lengths that have free runs), the arenas (dirty and hot pages) and
 * the buddy core (free block starts). */
#ifndef STRATA_BITMAP_H
#define STRATA_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool bitmap_get(const uint64_t *map, size_t i) { return map[i / 64] >> (i % 64) & 1; }
static inline void bitmap_set(uint64_t *map, size_t i) { map[i / 64] |= (uint64_t)1 << (i % 64); }
static inline void bitmap_clear(uint64_t *map, size_t i) { map[i / 64] &= ~((uint64_t)1 << (i % 64)); }

/* The bits of [from, to) in from's word; *end is where that word's part
 * of the range ends. */
static inline uint64_t bitmap_mask(size_t from, size_t to, size_t *end) {
  *end = (from | 63) + 1 < to ? (from | 63) + 1 : to;
  size_t n = *end - from;
  return (n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1) << (from % 64);
}

static inline void bitmap_set_range(uint64_t *map, size_t from, size_t to) {
  for (size_t end; from < to; from = end) map[from / 64] |= bitmap_mask(from, to, &end);
}
static inline bool bitmap_any(const uint64_t *map, size_t from, size_t to) {
  for (size_t end; from < to; from = end)
    if (map[from / 64] & bitmap_mask(from, to, &end)) return true;
  return false;
}
static inline size_t bitmap_count(const uint64_t *map, size_t from, size_t to) {
  size_t n = 0;
  for (size_t end; from < to; from = end)
    n += (size_t)__builtin_popcountll(map[from / 64] & bitmap_mask(from, to, &end));
  return n;
}
/* The first set bit at or after from, below limit; limit when none. */
static inline size_t bitmap_next(const uint64_t *map, size_t from, size_t limit) {
  for (size_t w = from / 64; w * 64 < limit; w++) {
    uint64_t bits = map[w];
    if (w == from / 64) bits &= ~(uint64_t)0 << (from % 64);
    if (bits) {
      size_t i = w * 64 + (size_t)__builtin_ctzll(bits);
      return i < limit ? i : limit;
    }
  }
  return limit;
}

#endif
