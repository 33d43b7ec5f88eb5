/* bcache.c - the block caches' bounds (bcache.h).
 *
 * A class whose cache overflowed and then ran empty (the thread frees and
 * reallocates more blocks than the bound) doubles its bound at the refill,
 * up to class_info's cache_max, within a budget of BCACHE_EXTRA_MAX bytes a
 * heap and BCACHE_EXTRA_TOTAL over all heaps: what idle threads' caches may
 * keep past their first bounds, which only the threads themselves can give
 * back (the figures of tcmalloc's thread caches). A thread that frees a
 * burst and goes idle grows nothing. Every HEAP_GC_TICKS slow-path events
 * (heap_tick), the grown bound of each class that had no refill since is
 * halved, the blocks past it going back to their spans; a flush resets
 * every bound.
 */
#include "bcache.h"
#include "bin.h"
#include "pageheap.h"
#include "segmap.h"

#define BCACHE_EXTRA_MAX   ((uint32_t)4 * MiB)
#define BCACHE_EXTRA_TOTAL ((size_t)32 * MiB)
static _Atomic size_t bcache_extra_total;

/* Its caches are empty with no room: a malloc or a free there takes the
 * slow path, which gives the thread a heap. */
heap_t heap_empty;

void bcache_init(heap_t *h) {
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    h->room[c] = h->free_bound[c] = class_info[c].cache;
    STAT_SET(h->room_base[c], h->room[c]);
  }
}

bool bcache_valid(const heap_t *h, unsigned c) {
  const class_info_t *ci = &class_info[c];
  if (h->free_bound[c] < ci->cache || h->free_bound[c] > ci->cache_max) return false;
  uint32_t n = 0, max = bcache_max(h, c);
  for (block_t *b = h->free[c]; b; b = block_decode(b, h->secret)) {
    if (++n > max || segmap_kind(b) != SEG_SMALL) return false;
    span_t *s = span_of(b);
    if (s->kind != SPAN_SMALL || s->cls != c || !span_is_block_start(s, b) ||
        atomic_load_relaxed(&s->owner) != h || !block_looks_free(b, h->free_key))
      return false;
  }
  return (intptr_t)h->free_bound[c] - h->room[c] == (intptr_t)n;
}

void bcache_fork_child(const heap_t *h) { atomic_store_relaxed(&bcache_extra_total, h->free_extra); }

void bcache_bad_block(const block_t *b) {
  if (((b->key ^ span_free_key) & ~(uintptr_t)KEY_FRESH) == KEY_SUSPECT)
    fatal(CALL_FREE, b, "double free (the second from another thread)");
  fatal("malloc", b, "free block overwritten (use after free, or corrupted free list)");
}

void bcache_full(heap_t *h, span_t *s, block_t *b) {
  ASSERT(h->room[s->cls] < 0 && atomic_load_relaxed(&s->owner) == h && span_is_block_start(s, b));
  bcache_room_add(h, s->cls, 1);
  h->overflowed |= (uint64_t)1 << s->cls;
  bin_give(h, s, b);
}

static bool bcache_grow(heap_t *h, unsigned c) {
  ASSERT(h->free_bound[c] >= class_info[c].cache && h->free_bound[c] <= class_info[c].cache_max);
  uint32_t bound = h->free_bound[c], grow = bound;
  if (bound + grow > class_info[c].cache_max) grow = class_info[c].cache_max - bound;
  uint32_t bytes = grow * class_info[c].size;
  if (grow == 0 || h->free_extra + bytes > BCACHE_EXTRA_MAX) return false;
  if (atomic_add_relaxed(&bcache_extra_total, bytes) + bytes > BCACHE_EXTRA_TOTAL) {
    atomic_sub_relaxed(&bcache_extra_total, bytes);
    return false;
  }
  h->free_extra += bytes;
  h->free_bound[c] = (uint16_t)(bound + grow);
  bcache_room_add(h, c, (intptr_t)grow);
  return true;
}

/* Give blocks of the cache of class c back to their spans until at most
 * `keep` remain (a run may take it below), a run of one span's blocks at a
 * time: a refill brings one span's blocks, linked as the span links them, so
 * a run goes back whole (a thread that exits after a few mallocs of many
 * classes hands back a page's worth of carved blocks per class). The head of
 * each run is checked as malloc checks it; the others are followed only
 * while their links stay inside the span, and their keys are checked when
 * they are next handed out. Stops early at a bad head (left for malloc). */
static void bcache_trim(heap_t *h, unsigned c, uint32_t keep) {
  uintptr_t key;
  for (block_t *first; h->free_bound[c] - h->room[c] > (int32_t)keep &&
                       (first = bcache_pop(h, c, &key));) {
    span_t *s = span_of(first);
    ASSERT(s->kind == SPAN_SMALL && s->cls == c && atomic_load_relaxed(&s->owner) == h);
    size_t bytes = (size_t)s->npages * PAGE_SIZE;
    block_t *last = first, *next;
    uint32_t n = 1;
    while ((uintptr_t)(next = h->free[c]) - (uintptr_t)s->start < bytes) {
      h->free[c] = block_decode(next, h->secret);
      last = next;
      n++;
    }
    bcache_room_add(h, c, (intptr_t)n);
    bin_give_list(h, s, first, last, n);
  }
}

/* Lower the bound of c to `to` (at least class_info.cache); the blocks past
 * it go back to their spans. */
static void bcache_lower(heap_t *h, unsigned c, uint32_t to) {
  ASSERT(to >= class_info[c].cache && to <= h->free_bound[c]);
  uint32_t less = h->free_bound[c] - to, bytes = less * class_info[c].size;
  h->free_bound[c] = (uint16_t)to;
  bcache_room_add(h, c, -(intptr_t)less);
  h->free_extra -= bytes;
  atomic_sub_relaxed(&bcache_extra_total, bytes);
  bcache_trim(h, c, to);
}

void bcache_gc(heap_t *h) {
  if (!h->free_extra) return;
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    uint32_t base = class_info[c].cache, half = h->free_bound[c] / 2u;
    if (h->free_bound[c] > base && !(h->refilled >> c & 1))
      bcache_lower(h, c, half > base ? half : base);
  }
}

void bcache_refilled(heap_t *h, unsigned c) {
  ASSERT(c < CLASS_COUNT && h->free[c] == NULL);
  uint64_t bit = (uint64_t)1 << c;
  h->refilled |= bit;
  if (!(h->overflowed & bit)) return;
  h->overflowed &= ~bit;
  bcache_grow(h, c);
}

void bcache_flush(heap_t *h, unsigned c) {
  ASSERT(c < CLASS_COUNT);
  bcache_trim(h, c, 0);
  if (h->free[c]) bcache_bad_block(h->free[c]);
  bcache_lower(h, c, class_info[c].cache);
  ASSERT(h->free[c] == NULL && h->room[c] == h->free_bound[c] && h->free_bound[c] == class_info[c].cache);
}
