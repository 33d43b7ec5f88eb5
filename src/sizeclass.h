/* sizeclass.h - small size classes: 16-byte spacing up to 64, then four
 * classes per doubling up to SMALL_MAX (16, 32, 48, 64, 80, 96, 112, 128, 160,
 * ..., 32768: 40 classes). Worst-case waste is 15 bytes up to 64 and under 20%
 * above (a request just over 2^k gets 2^k + 2^k/4). Every class size is a
 * multiple of 16, and each power of two is a class, so a class whose size is a
 * multiple of an alignment <= PAGE_SIZE gives blocks with that alignment. */
#ifndef STRATA_SIZECLASS_H
#define STRATA_SIZECLASS_H

#include "internal.h"

#define CLASS_COUNT 40
#define CLASS_FAST_MAX 1024   /* sizes up to here are looked up in a table */

typedef struct {
  uint32_t size;       /* block size */
  uint16_t pages;      /* span length in PAGE_SIZE pages */
  uint16_t count;      /* blocks per span */
  uint16_t cache;      /* blocks a thread caches at first (see heap.h) */
  uint16_t cache_max;  /* and at most, once its cache of the class grew */
} class_info_t;

extern const uint8_t class_of_small[CLASS_FAST_MAX + 1];
extern class_info_t class_info[CLASS_COUNT];

/* size -> class for 0 < size <= SMALL_MAX (size 0 is class 0). O(1). */
static inline unsigned class_of(size_t size) {
  if (likely(size <= CLASS_FAST_MAX)) return class_of_small[size];
  unsigned k = 63 - (unsigned)__builtin_clzl(size - 1);    /* 2^k < size <= 2^(k+1) */
  return 4 + 4 * (k - 6) + (unsigned)((size - 1 - ((size_t)1 << k)) >> (k - 2));
}

/* The smallest class of at least `size` whose block size is a multiple of
 * `align` (a power of two <= PAGE_SIZE); CLASS_COUNT when there is none. */
unsigned class_of_aligned(size_t size, size_t align);

/* Fill class_info (span lengths); called once at initialisation. */
void class_init(void);

#endif
