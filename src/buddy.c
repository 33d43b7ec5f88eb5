/* buddy.c - the buddy core (buddy.h) and the standalone strata_buddy_* API.
 *
 * A region of `size` bytes is cut into nblocks = size / min_block minimum
 * blocks, numbered by index. Its start looks like this:
 *
 *   [ caller's prefix | pad to 16 | struct strata_buddy | freemap[] | link[] |
 *     tag[] | pad | canary_hi ][ pad to min_block ][ blocks ... ]
 *    \__ used prefix: indices [0, reserved), never handed out ______/
 *
 * The header's first word is canary_lo; canary_hi is the last word of the
 * metadata. Per index i:
 *   tag[i]      0 unless a block starts at i; else TAG_FREE or TAG_USED | order
 *   link[i]     next/prev index in the free list of its order (free heads only)
 *   freemap     bit i set iff a free block starts at i
 * Per order k: head[k] starts the doubly linked free list of order-k blocks
 * and bit k of `nonempty` says that list is not empty.
 *
 * Free memory is never written: the large tier gives free pages back to the
 * OS (madvise) and, with guard=1, makes them inaccessible, so every link
 * lives here in the metadata.
 * Every operation is O(max_order); buddy_check is the O(nblocks) walk.
 */
#include "buddy.h"

#include <errno.h>
#include <string.h>

#include "internal.h"

#define BUDDY_MAGIC 0x5354524142554444ull /* "STRABUDD" */
#define NIL         UINT32_MAX            /* end of a free list */
#define MAX_ORDERS  32                    /* nblocks < 2^32 */
#define TAG_FREE    0x40u
#define TAG_USED    0x80u
#define TAG_ORDER   0x1fu

struct buddy_link { uint32_t next, prev; };

/* Invariants (what buddy_check verifies):
 *  - blocks [reserved, nblocks) are tiled exactly by free and used blocks; a
 *    block of order k starts at a multiple of 2^k and ends by nblocks; tag is
 *    nonzero exactly at block starts (and 0 in the reserved prefix);
 *  - a free block of order k is in list head[k] and has its freemap bit set;
 *    no other index has a freemap bit;
 *  - no free block has a free buddy of the same order (merging is eager);
 *  - free_bytes is the sum of the free blocks' sizes. */
struct strata_buddy {
  uint64_t canary_lo;          /* BUDDY_MAGIC ^ address of this header */
  unsigned char *base;         /* region start: index 0 */
  size_t min_block;            /* power of two, >= 16 */
  size_t free_bytes;           /* bytes in free blocks */
  uint32_t nblocks;            /* minimum blocks in the region (< NIL) */
  uint32_t reserved;           /* indices [0, reserved): prefix + metadata */
  unsigned shift;              /* log2(min_block) */
  unsigned max_order;          /* largest k with 2^k <= nblocks */
  uint32_t nonempty;           /* bit k: head[k] != NIL */
  uint32_t head[MAX_ORDERS];   /* first free block of each order, or NIL */
  uint64_t *freemap;           /* (nblocks + 63) / 64 words */
  struct buddy_link *link;     /* nblocks entries */
  uint8_t *tag;                /* nblocks entries */
  uint64_t *canary_hi;         /* == canary_lo */
};

static size_t buddy_round(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

/* Indices must stay below NIL: a larger region's tail is simply not used. */
static size_t buddy_nblocks(size_t size, size_t min_block) {
  size_t n = size / min_block;
  return n >= NIL ? NIL - 1 : n;
}

static uint64_t buddy_canary(const strata_buddy *b) {
  return BUDDY_MAGIC ^ (uint64_t)(uintptr_t)b;
}

static bool buddy_bit(const strata_buddy *b, uint32_t i) {
  return (b->freemap[i >> 6] >> (i & 63)) & 1;
}

/* O(1): a free block of order k starts at i. */
static bool buddy_is_free(const strata_buddy *b, uint32_t i, unsigned k) {
  return i < b->nblocks && buddy_bit(b, i) && (b->tag[i] & TAG_ORDER) == k;
}

static void buddy_push(strata_buddy *b, uint32_t i, unsigned k) {
  uint32_t h = b->head[k];
  b->link[i].next = h;
  b->link[i].prev = NIL;
  if (h != NIL) b->link[h].prev = i;
  b->head[k] = i;
  b->nonempty |= 1u << k;
  b->tag[i] = (uint8_t)(TAG_FREE | k);
  b->freemap[i >> 6] |= 1ull << (i & 63);
  b->free_bytes += b->min_block << k;
}

/* Take the free block at i (order k) off its list; its tag is cleared. */
static void buddy_unlink(strata_buddy *b, uint32_t i, unsigned k) {
  struct buddy_link l = b->link[i];
  if (l.prev != NIL) b->link[l.prev].next = l.next;
  else b->head[k] = l.next;
  if (l.next != NIL) b->link[l.next].prev = l.prev;
  if (b->head[k] == NIL) b->nonempty &= ~(1u << k);
  b->tag[i] = 0;
  b->freemap[i >> 6] &= ~(1ull << (i & 63));
  b->free_bytes -= b->min_block << k;
}

/* Free the block at i (order k), merging with free buddies of equal order.
 * A buddy at or beyond nblocks, or in the reserved prefix, is never free. */
static void buddy_release(strata_buddy *b, uint32_t i, unsigned k) {
  b->tag[i] = 0;
  while (k < b->max_order) {
    uint32_t bud = i ^ (1u << k);
    if (!buddy_is_free(b, bud, k)) break;
    buddy_unlink(b, bud, k);
    i &= ~(1u << k);
    k++;
  }
  buddy_push(b, i, k);
}

static uint32_t buddy_index(const strata_buddy *b, const void *p) {
  return (uint32_t)(((uintptr_t)p - (uintptr_t)b->base) >> b->shift);
}

static void *buddy_addr(const strata_buddy *b, uint32_t i) {
  return b->base + ((size_t)i << b->shift);
}

/* The smallest order whose block holds n bytes, or -1 when none does. */
static int buddy_order_for(const strata_buddy *b, size_t n) {
  if (n <= b->min_block) return 0;
  unsigned bits = 64 - (unsigned)__builtin_clzll((unsigned long long)(n - 1));
  unsigned k = bits - b->shift; /* n - 1 >= min_block, so bits > shift */
  return k > b->max_order ? -1 : (int)k;
}

/* ---- the core (buddy.h) ------------------------------------------------ */

size_t buddy_meta_size(size_t size, size_t min_block) {
  if (min_block == 0) return 0;
  size_t n = buddy_nblocks(size, min_block);
  size_t bytes = buddy_round(sizeof(struct strata_buddy), 8)
               + (n + 63) / 64 * sizeof(uint64_t)
               + n * sizeof(struct buddy_link)
               + n;
  /* canary_hi is the last word; the total is a multiple of 16. */
  return buddy_round(buddy_round(bytes, 8) + sizeof(uint64_t), 16);
}

void *buddy_alloc_order(strata_buddy *b, unsigned order) {
  if (order > b->max_order) return NULL;
  uint32_t avail = b->nonempty & (UINT32_MAX << order);
  if (avail == 0) return NULL;
  void *in = buddy_addr(b, b->head[__builtin_ctz(avail)]);
  return buddy_alloc_in(b, in, in, order);
}

void *buddy_alloc_in(strata_buddy *b, void *in, void *p, unsigned order) {
  uint32_t f = buddy_index(b, in), i = buddy_index(b, p);
  unsigned k = b->tag[f] & TAG_ORDER;
  buddy_unlink(b, f, k);
  while (k > order) { /* split: free the half without i */
    k--;
    if (i & (1u << k)) {
      buddy_push(b, f, k);
      f += 1u << k;
    } else {
      buddy_push(b, f + (1u << k), k);
    }
  }
  b->tag[i] = (uint8_t)(TAG_USED | order);
  return p;
}

void *buddy_first_free(const strata_buddy *b, unsigned order) {
  return order < MAX_ORDERS && b->head[order] != NIL ? buddy_addr(b, b->head[order]) : NULL;
}

void *buddy_next_free(const strata_buddy *b, const void *p) {
  uint32_t next = b->link[buddy_index(b, p)].next;
  return next != NIL ? buddy_addr(b, next) : NULL;
}

int buddy_order_of(const strata_buddy *b, const void *p) {
  uintptr_t a = (uintptr_t)p, base = (uintptr_t)b->base;
  if (a < base || ((a - base) & (b->min_block - 1))) return -1;
  uintptr_t i = (a - base) >> b->shift;
  if (i >= b->nblocks || !(b->tag[i] & TAG_USED)) return -1;
  return (int)(b->tag[i] & TAG_ORDER);
}

bool buddy_free_at(const strata_buddy *b, const void *p) {
  uintptr_t a = (uintptr_t)p, base = (uintptr_t)b->base;
  if (a < base || ((a - base) & (b->min_block - 1))) return false;
  uintptr_t i = (a - base) >> b->shift;
  return i < b->nblocks && buddy_bit(b, (uint32_t)i);
}

void buddy_free_block(strata_buddy *b, void *p) {
  uint32_t i = buddy_index(b, p);
  buddy_release(b, i, b->tag[i] & TAG_ORDER);
}

bool buddy_grow_in_place(strata_buddy *b, void *p, unsigned order) {
  int cur = buddy_order_of(b, p);
  if (cur < 0 || order < (unsigned)cur || order > b->max_order) return false;
  uint32_t i = buddy_index(b, p);
  /* Check every step first: p must be the left buddy (i's bit k clear) and
   * the right buddy a free block of order k. */
  for (unsigned k = (unsigned)cur; k < order; k++)
    if ((i & (1u << k)) || !buddy_is_free(b, i | (1u << k), k)) return false;
  for (unsigned k = (unsigned)cur; k < order; k++)
    buddy_unlink(b, i | (1u << k), k);
  b->tag[i] = (uint8_t)(TAG_USED | order);
  return true;
}

void buddy_shrink(strata_buddy *b, void *p, unsigned order) {
  int cur = buddy_order_of(b, p);
  if (cur < 0 || order >= (unsigned)cur) return;
  uint32_t i = buddy_index(b, p);
  b->tag[i] = (uint8_t)(TAG_USED | order);
  for (unsigned k = (unsigned)cur; k-- > order;) /* upper halves, largest first */
    buddy_release(b, i | (1u << k), k);
}

size_t buddy_min_block(const strata_buddy *b) { return b->min_block; }
size_t buddy_reserved_bytes(const strata_buddy *b) { return (size_t)b->reserved << b->shift; }
unsigned buddy_max_order(const strata_buddy *b) { return b->max_order; }

bool buddy_check_canaries(const strata_buddy *b) {
  uint64_t want = buddy_canary(b);
  if (b->canary_lo != want) return false;
  /* Trust the pointer only if it lies within this metadata. */
  uintptr_t hi = (uintptr_t)b->canary_hi, lo = (uintptr_t)(b + 1);
  uintptr_t end = (uintptr_t)b->base + ((uintptr_t)b->reserved << b->shift);
  if (hi < lo || hi > end - sizeof(uint64_t) || (hi & 7)) return false;
  return *b->canary_hi == want;
}

/* Walk each free list: entries are free heads of that order, aligned, inside
 * the region, with consistent prev links. Returns the bytes listed, or
 * SIZE_MAX on failure; *count gets the number of entries. */
static size_t buddy_check_lists(const strata_buddy *b, uint64_t *count) {
  size_t bytes = 0;
  *count = 0;
  for (unsigned k = 0; k < MAX_ORDERS; k++) {
    uint32_t prev = NIL, i = b->head[k];
    if (((b->nonempty >> k) & 1) != (i != NIL)) return SIZE_MAX;
    if (k > b->max_order && i != NIL) return SIZE_MAX;
    for (; i != NIL; prev = i, i = b->link[i].next) {
      if (i < b->reserved || i >= b->nblocks || (i & ((1u << k) - 1))) return SIZE_MAX;
      if ((uint64_t)i + (1ull << k) > b->nblocks) return SIZE_MAX;
      if (b->tag[i] != (TAG_FREE | k) || !buddy_bit(b, i)) return SIZE_MAX;
      if (b->link[i].prev != prev || ++*count > b->nblocks) return SIZE_MAX;
      bytes += b->min_block << k;
    }
  }
  return bytes;
}

bool buddy_check(const strata_buddy *b) {
  if (!buddy_check_canaries(b)) return false;
  if (b->reserved == 0 || b->reserved >= b->nblocks || b->max_order >= MAX_ORDERS)
    return false;
  if ((1ull << b->max_order) > b->nblocks || (2ull << b->max_order) <= b->nblocks)
    return false;
  uint64_t listed;
  size_t list_bytes = buddy_check_lists(b, &listed);
  if (list_bytes == SIZE_MAX || list_bytes != b->free_bytes) return false;

  /* Tile the region: the reserved prefix, then block after block. */
  uint64_t i = 0, heads = 0;
  size_t free_bytes = 0;
  for (; i < b->reserved; i++)
    if (b->tag[i] != 0 || buddy_bit(b, (uint32_t)i)) return false;
  while (i < b->nblocks) {
    uint8_t t = b->tag[i];
    unsigned k = t & TAG_ORDER;
    bool is_free = (t & TAG_FREE) != 0;
    if ((t & ~TAG_ORDER) != TAG_FREE && (t & ~TAG_ORDER) != TAG_USED) return false;
    if (k > b->max_order || (i & ((1ull << k) - 1)) || i + (1ull << k) > b->nblocks)
      return false;
    if (buddy_bit(b, (uint32_t)i) != is_free) return false;
    if (is_free) {
      heads++;
      free_bytes += b->min_block << k;
      if (buddy_is_free(b, (uint32_t)(i ^ (1ull << k)), k)) return false; /* unmerged */
    }
    for (uint64_t j = i + 1; j < i + (1ull << k); j++)
      if (b->tag[j] != 0 || buddy_bit(b, (uint32_t)j)) return false;
    i += 1ull << k;
  }
  /* Freemap bits past nblocks in the last word must be clear. */
  for (uint64_t j = b->nblocks; j < ((uint64_t)b->nblocks + 63) / 64 * 64; j++)
    if ((b->freemap[j >> 6] >> (j & 63)) & 1) return false;
  return heads == listed && free_bytes == b->free_bytes;
}

/* ---- the standalone API (strata.h) ------------------------------------- */

API strata_buddy *strata_buddy_init(void *region, size_t size, size_t prefix,
                                    size_t min_block) {
  uintptr_t r = (uintptr_t)region;
  if (!region || (r & 15) || size > UINTPTR_MAX - r) return NULL;
  if (min_block < 16 || !is_pow2(min_block) || prefix > size) return NULL;
  size_t n = buddy_nblocks(size, min_block);
  size_t hdr = buddy_round(prefix, 16); /* prefix <= size < SIZE_MAX - 15 */
  size_t meta = buddy_meta_size(size, min_block);
  if (hdr > size || meta > size - hdr) return NULL;
  size_t used = hdr + meta;
  size_t reserved = used / min_block + (used % min_block != 0);
  if (reserved >= n) return NULL; /* no room for a single block */

  strata_buddy *b = (strata_buddy *)(void *)((unsigned char *)region + hdr);
  unsigned char *t = (unsigned char *)b + buddy_round(sizeof *b, 8);
  memset(b, 0, sizeof *b);
  b->base = region;
  b->min_block = min_block;
  b->nblocks = (uint32_t)n;
  b->reserved = (uint32_t)reserved;
  b->shift = (unsigned)__builtin_ctzll(min_block);
  b->max_order = 31 - (unsigned)__builtin_clz((uint32_t)n);
  for (unsigned k = 0; k < MAX_ORDERS; k++) b->head[k] = NIL;
  b->freemap = (uint64_t *)(void *)t;
  t += (n + 63) / 64 * sizeof(uint64_t);
  b->link = (struct buddy_link *)(void *)t;
  t += n * sizeof(struct buddy_link);
  b->tag = t;
  b->canary_hi = (uint64_t *)(void *)((unsigned char *)b + meta - sizeof(uint64_t));
  memset(b->freemap, 0, (n + 63) / 64 * sizeof(uint64_t));
  memset(b->tag, 0, n);
  b->canary_lo = *b->canary_hi = buddy_canary(b);

  /* The free space after the reserved prefix, as maximal aligned blocks. */
  for (uint64_t i = reserved; i < n;) {
    unsigned k = (unsigned)__builtin_ctzll(i); /* i > 0: reserved >= 1 */
    while (i + (1ull << k) > n) k--;           /* so k ends <= max_order */
    buddy_push(b, (uint32_t)i, k);
    i += 1ull << k;
  }
  return b;
}

API void *strata_buddy_alloc(strata_buddy *b, size_t size) {
  if (!b) return NULL;
  int k = buddy_order_for(b, size);
  return k < 0 ? NULL : buddy_alloc_order(b, (unsigned)k);
}

API int strata_buddy_free(strata_buddy *b, void *p) {
  if (!p) return 0;
  if (!b || buddy_order_of(b, p) < 0) return EINVAL;
  buddy_free_block(b, p);
  return 0;
}

API void *strata_buddy_realloc(strata_buddy *b, void *p, size_t size) {
  if (!p) return strata_buddy_alloc(b, size);
  if (!b) return NULL;
  int cur = buddy_order_of(b, p);
  if (cur < 0) return NULL;
  if (size == 0) {
    buddy_free_block(b, p);
    return NULL;
  }
  int want = buddy_order_for(b, size);
  if (want < 0) return NULL;
  if (want <= cur) {
    buddy_shrink(b, p, (unsigned)want);
    return p;
  }
  if (buddy_grow_in_place(b, p, (unsigned)want)) return p;
  void *q = buddy_alloc_order(b, (unsigned)want);
  if (!q) return NULL;
  memcpy(q, p, b->min_block << cur);
  buddy_free_block(b, p);
  return q;
}

API size_t strata_buddy_size(const strata_buddy *b, const void *p) {
  int k = b && p ? buddy_order_of(b, p) : -1;
  return k < 0 ? 0 : b->min_block << k;
}

API size_t strata_buddy_free_bytes(const strata_buddy *b) {
  return b ? b->free_bytes : 0;
}
