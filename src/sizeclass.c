/* sizeclass.c - the class table, computed once. */
#include "sizeclass.h"

/* class_of_small[n] is the class of size n, indexed by the size itself so
 * that malloc's lookup is a single load with no rounding; the price is
 * 1 KiB of read-only table. */
#define X16(c)  c, c, c, c, c, c, c, c, c, c, c, c, c, c, c, c
#define X32(c)  X16(c), X16(c)
#define X64(c)  X32(c), X32(c)
#define X128(c) X64(c), X64(c)
const uint8_t class_of_small[CLASS_FAST_MAX + 1] = {
  0, X16(0), X16(1), X16(2), X16(3),                      /* <= 64 */
  X16(4), X16(5), X16(6), X16(7),                         /* <= 128 */
  X32(8), X32(9), X32(10), X32(11),                       /* <= 256 */
  X64(12), X64(13), X64(14), X64(15),                     /* <= 512 */
  X128(16), X128(17), X128(18), X128(19),                 /* <= 1024 */
};
#undef X16
#undef X32
#undef X64
#undef X128

class_info_t class_info[CLASS_COUNT];

static size_t class_size_of(unsigned c) {
  if (c < 4) return (size_t)(c + 1) * 16;
  unsigned k = 6 + (c - 4) / 4;                            /* (2^k, 2^(k+1)] */
  return ((size_t)1 << k) + ((size_t)((c - 4) % 4 + 1) << (k - 2));
}

/* A span holds at least 8 blocks (fewer page-heap trips) and wastes at most
 * 1/16 of itself at its tail. A thread caches up to 32 KiB of a class, but
 * at least 4 blocks and at most 1024 (1.6 MiB if every class is full: what
 * an idle thread keeps); a thread that frees and reallocates more than that
 * may grow it to 1 MiB (but 1024 blocks), within the budgets of heap.c. */
void class_init(void) {
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    size_t size = class_size_of(c);
    size_t pages = (8 * size + PAGE_SIZE - 1) / PAGE_SIZE;
    while ((pages * PAGE_SIZE) % size > pages * PAGE_SIZE / 16) pages++;
    size_t cache = 32 * KiB / size;
    cache = cache < 4 ? 4 : cache > 1024 ? 1024 : cache;
    size_t cache_max = MiB / size;
    cache_max = cache_max < cache ? cache : cache_max > 1024 ? 1024 : cache_max;
    class_info[c] = (class_info_t){ (uint32_t)size, (uint16_t)pages,
                                    (uint16_t)(pages * PAGE_SIZE / size), (uint16_t)cache,
                                    (uint16_t)cache_max };
    ASSERT(size % ALIGNMENT == 0 && class_info[c].count >= 8 && pages <= SEG_PAGES / 2 &&
           (c == 0 || size > class_info[c - 1].size) && (size > CLASS_FAST_MAX || class_of_small[size] == c));
  }
}

unsigned class_of_aligned(size_t size, size_t align) {
  ASSERT(is_pow2(align) && align <= PAGE_SIZE);
  if (size > SMALL_MAX) return CLASS_COUNT;
  for (unsigned c = class_of(size ? size : 1); c < CLASS_COUNT; c++)
    if ((class_info[c].size & (align - 1)) == 0) return c;
  return CLASS_COUNT;
}
