/* arena.c - one buddy arena of the large tier (arena.h).
 *
 * Layout: arena_t (lock, canaries, the dirty and hot page bitmaps and the
 * usable size of each block) at the arena's start, then the buddy core's
 * metadata, then blocks; all of it is one strata_buddy over the arena with
 * arena_t as its prefix.
 *
 * Dirty bitmap: bit i set when the OS page i of the arena may hold non-zero
 * bytes. Set for the usable pages of each block handed out; cleared when
 * pages are purged. It tells calloc what to clear and which tail pages of a
 * reused block must be purged to keep them non-resident.
 *
 * Hot bitmaps: the pages a free (or a block's unused tail) made purgeable
 * lately: hot[0] since the last rotation, hot[1] before it. A decay pass
 * purges only pages in neither, then rotates; a mark rotates too when hot[0]
 * has been open for half the decay time. So a page is purged two to three
 * passes (one to one and a half decay periods) after it was last freed, and
 * at the first pass once its map has had no mark for the decay time
 * (passes run on the program's own slow paths when no purge thread runs, so
 * they may be far apart): purging every dirty page of the arena at once
 * refaults the pages a steady workload reuses within milliseconds.
 *
 * guard=1: only a block's usable pages are accessible, and only while it is
 * allocated, so a write after free or past the pages faults.
 *
 * Invariant (arena_valid): the buddy's own (buddy.h); an allocated block of
 * 2^k pages at page i has 1 <= usable[i] <= 2^k, and its usable pages are
 * dirty.
 */
#include "arena.h"
#include "backlog.h"
#include "bitmap.h"
#include "buddy.h"
#include "options.h"
#include "os.h"
#include "segmap.h"

#include <string.h>

#define ARENA_PAGES   (ARENA_SIZE / OS_PAGE)
#define ARENA_MAGIC   0x5354524141524e41ull   /* "STRAARNA" */

struct arena {
  uint64_t canary_lo;                  /* ARENA_MAGIC ^ address */
  lock_t lock;
  strata_buddy *buddy;
  uint64_t dirty[ARENA_PAGES / 64];
  uint16_t usable[ARENA_PAGES];        /* usable pages of the block starting at page i */
  uint64_t hot[2][ARENA_PAGES / 64];   /* made purgeable lately (see above) */
  uint32_t hot_opened_ms;              /* first mark in hot[0] since its rotation */
  uint32_t hot_marked_ms;              /* last mark in hot[0] */
  uint32_t hot_closed_ms;              /* last rotation: every mark of hot[1] is older */
  bool unpurged;                       /* dirty free pages or tails not yet purged */
  /* Statistics, written under the lock (no read-modify-write shared by the
   * arenas), read with relaxed loads by arena_stats. */
  _Atomic uint64_t nmalloc, nfree;
  _Atomic size_t allocated, active;    /* usable / block bytes */
  uint64_t canary_hi;
};

lock_t *arena_lock(arena_t *a) { return &a->lock; }

/* Under a's lock. */
static void count_add(_Atomic uint64_t *c, int64_t v) { atomic_store_relaxed(c, atomic_load_relaxed(c) + (uint64_t)v); }
/* A block of 2^order pages, `pages` of them usable, comes (sign 1) or goes
 * (-1). */
static void arena_count_bytes(arena_t *a, int sign, size_t pages, unsigned order) {
  count_add(&a->allocated, sign * (int64_t)(pages * OS_PAGE));
  count_add(&a->active, sign * ((int64_t)OS_PAGE << order));
}

static bool arena_intact(const arena_t *a) {
  uint64_t key = ARENA_MAGIC ^ (uintptr_t)a;
  return a->canary_lo == key && a->canary_hi == key && buddy_check_canaries(a->buddy);
}

arena_t *arena_new(void) {
  arena_t *a = os_map_aligned(ARENA_SIZE, ARENA_SIZE, 0);
  if (!a) return NULL;
  if (!segmap_set(a, ARENA_SIZE, SEG_ARENA)) {
    os_unmap(a, ARENA_SIZE);
    return NULL;
  }
  a->canary_lo = a->canary_hi = ARENA_MAGIC ^ (uintptr_t)a;
  a->lock = (lock_t)LOCK_INIT(RANK_ARENA);
  a->buddy = strata_buddy_init(a, ARENA_SIZE, sizeof(arena_t), OS_PAGE);
  size_t meta = a->buddy ? buddy_reserved_bytes(a->buddy) : 0;
  if (!a->buddy || (options.guard && !os_protect_none((char *)a + meta, ARENA_SIZE - meta))) {
    segmap_clear(a, ARENA_SIZE, SEG_ARENA);
    os_unmap(a, ARENA_SIZE);
    return NULL;
  }
  return a;
}

arena_t *arena_of(const void *p, const char *call) {
  arena_t *a = (arena_t *)(((uintptr_t)p - 1) & ~(uintptr_t)ARENA_MASK);
  CHECK(arena_intact(a), call, p, "large arena metadata corrupted");
  return a;
}

/* Clear the bits [from, to) of the dirty map and report the first and last
 * page that was dirty (*lo > *hi when none was). */
static void arena_dirty_take(arena_t *a, size_t from, size_t to, size_t *lo, size_t *hi) {
  *lo = to; *hi = 0;
  for (size_t i = from; i < to; i++)
    if (bitmap_get(a->dirty, i)) {
      bitmap_clear(a->dirty, i);
      if (*lo == to) *lo = i;
      *hi = i + 1;
    }
}
static bool dirty_any(const arena_t *a, size_t from, size_t to) { return bitmap_any(a->dirty, from, to); }
static size_t dirty_count(const arena_t *a, size_t from, size_t to) { return bitmap_count(a->dirty, from, to); }
static bool hot_any(const arena_t *a, size_t from, size_t to) {
  return bitmap_any(a->hot[0], from, to) || bitmap_any(a->hot[1], from, to);
}

static void arena_hot_rotate(arena_t *a, uint32_t now) {
  memcpy(a->hot[1], a->hot[0], sizeof a->hot[0]);
  memset(a->hot[0], 0, sizeof a->hot[0]);
  a->hot_closed_ms = now;
  a->hot_opened_ms = 0;
}

/* Under a's lock: forget the marks older than `age` ms at `now`. */
static void arena_cool(arena_t *a, uint32_t now, uint32_t age) {
  if (os_ms_since(now, a->hot_closed_ms) >= age) memset(a->hot[1], 0, sizeof a->hot[1]);
  if (os_ms_since(now, a->hot_marked_ms) >= age) {   /* and hot[1] is older still */
    memset(a->hot[0], 0, sizeof a->hot[0]);
    memset(a->hot[1], 0, sizeof a->hot[1]);
  }
}

/* Under a's lock: pages [from, to) may be dirty and are free or past a
 * block's usable size: the decay purges them once they have cooled. The
 * marks that cooled for the decay time go first: rotated into hot[1] by
 * this mark, they would keep pages idle since long from the next pass (a
 * program that frees a burst, idles, then frees one block). */
static void arena_note_unpurged(arena_t *a, size_t from, size_t to) {
  ASSERT(lock_held(RANK_ARENA) && from < to && to <= ARENA_PAGES);
  uint32_t now = os_now_ms() | 1;      /* 0: hot[0] is not open */
  backlog_note((to - from) * OS_PAGE);
  arena_cool(a, now, options.decay_ms);
  if (a->hot_opened_ms && now - a->hot_opened_ms >= options.decay_ms / 2) arena_hot_rotate(a, now);
  if (!a->hot_opened_ms) a->hot_opened_ms = now;
  a->hot_marked_ms = now;
  bitmap_set_range(a->hot[0], from, to);
  a->unpurged = true;
}

/* Into *best if better: the place for a block of 2^order pages, the first
 * `pages` used, in the free block f of order k that has the most of them
 * dirty; true when all are (no better place exists). */
static bool pick_in(const arena_t *a, char *f, unsigned k, unsigned order, size_t pages, arena_pick_t *best) {
  size_t from = (size_t)(f - (char *)a) / OS_PAGE, to = from + ((size_t)1 << k);
  if (!dirty_any(a, from, to)) return false;
  for (size_t i = from; i < to; i += (size_t)1 << order) {
    size_t d = dirty_count(a, i, i + pages);
    if (d > best->dirty) *best = (arena_pick_t){ (char *)a + i * OS_PAGE, f, d };
    if (d == pages) return true;
  }
  return false;
}

/* Under a's lock: the place for a block of 2^order pages, the first `pages`
 * used, whose used pages are the most dirty, among the first
 * ARENA_PICK_BLOCKS free blocks of each order (at == NULL: none is free).
 * Pages a freed block left resident are reused before clean ones are
 * faulted in, so resident memory follows the live blocks; the buddy's own
 * choice (the newest free block of the smallest order) would take clean
 * pages while dirty ones of other orders wait for the decay. Ties go to
 * that same choice, which is all there is when no free page of a is dirty
 * (!unpurged). */
#define ARENA_PICK_BLOCKS 8
arena_pick_t arena_pick(const arena_t *a, unsigned order, size_t pages) {
  ASSERT(lock_held(RANK_ARENA) && pages >= 1 && pages <= ((size_t)1 << order));
  arena_pick_t best = { NULL, NULL, 0 };
  for (unsigned k = order; k <= buddy_max_order(a->buddy); k++) {
    char *f = buddy_first_free(a->buddy, k);
    if (!f) continue;
    if (!best.at) {
      best = (arena_pick_t){ f, f, 0 };
      if (!a->unpurged) break;
    }
    for (int n = 0; f && n < ARENA_PICK_BLOCKS; n++, f = buddy_next_free(a->buddy, f))
      if (pick_in(a, f, k, order, pages, &best)) return best;
  }
  return best;
}

/* Under a's lock: take the block arena_pick chose, mark its usable pages.
 * A dirty tail (pages past the request that a previous user wrote) is left
 * to the decay, which purges it like free pages: purging it here would cost
 * a madvise per allocation. */
void *arena_take(arena_t *a, arena_pick_t pick, unsigned order, size_t pages, uint64_t *dirty) {
  ASSERT(lock_held(RANK_ARENA) && pick.at);
  char *p = buddy_alloc_in(a->buddy, pick.in, pick.at, order);
  size_t i = (size_t)(p - (char *)a) / OS_PAGE;
  if (dirty)                          /* calloc: which pages may be non-zero */
    for (size_t k = 0; k < pages; k++) {
      if (bitmap_get(a->dirty, i + k)) bitmap_set(dirty, k);
      else bitmap_clear(dirty, k);
    }
  if (dirty_any(a, i + pages, i + ((size_t)1 << order)))
    arena_note_unpurged(a, i + pages, i + ((size_t)1 << order));
  bitmap_set_range(a->dirty, i, i + pages);
  backlog_grew(pages * OS_PAGE);
  a->usable[i] = (uint16_t)pages;
  count_add(&a->nmalloc, 1);
  arena_count_bytes(a, 1, pages, order);
  return p;
}

/* Lock a and return the order of the block at p; aborts (unlocked) when p
 * is not an allocated block. */
static unsigned arena_lock_block(arena_t *a, const void *p, const char *call) {
  lock_acquire(&a->lock);
  int order = buddy_order_of(a->buddy, p);
  if (unlikely(order < 0)) {
    bool freed = buddy_free_at(a->buddy, p);
    lock_release(&a->lock);
    fatal(call, p, freed ? "double free" : MSG_NOT_BLOCK);
  }
  return (unsigned)order;
}

void arena_free(arena_t *a, void *p, const char *call) {
  size_t i = (size_t)((char *)p - (char *)a) / OS_PAGE;
  unsigned order = arena_lock_block(a, p, call);
  ASSERT(a->usable[i] >= 1 && a->usable[i] <= ((size_t)1 << order));
  count_add(&a->nfree, 1);
  arena_count_bytes(a, -1, a->usable[i], order);
  if (options.guard && !os_protect_none(p, (size_t)a->usable[i] * OS_PAGE))
    fatal(call, p, "mprotect failed (guard=1)");
  buddy_free_block(a->buddy, p);      /* its dirty pages: for the decay */
  arena_note_unpurged(a, i, i + ((size_t)1 << order));
  lock_release(&a->lock);
}

size_t arena_usable(arena_t *a, const void *p, const char *call) {
  arena_lock_block(a, p, call);
  size_t pages = a->usable[(size_t)((const char *)p - (const char *)a) / OS_PAGE];
  lock_release(&a->lock);
  return pages * OS_PAGE;
}

bool arena_resize(arena_t *a, void *p, size_t size) {
  ASSERT(size > SMALL_MAX);
  size_t i = (size_t)((char *)p - (char *)a) / OS_PAGE;
  size_t pages = (size + OS_PAGE - 1) / OS_PAGE;
  unsigned want = log2_ceil(pages);
  if (((size_t)OS_PAGE << want) > LARGE_MAX) return false;
  unsigned order = arena_lock_block(a, p, CALL_REALLOC);
  bool ok = true;
  size_t lo = 0, hi = 0;
  if (pages < a->usable[i]) {      /* the dropped tail must not stay resident */
    /* Only inside the block we keep: halves given back to the buddy keep
     * their dirty bits (their next owner purges or clears them), since a
     * purge after the unlock could hit that owner's data. */
    size_t kept = (size_t)1 << (want < order ? want : order);
    size_t end = a->usable[i] < kept ? a->usable[i] : kept;
    if (pages < end) arena_dirty_take(a, i + pages, i + end, &lo, &hi);
  }
  if (want < order) {
    buddy_shrink(a->buddy, p, want);
    arena_note_unpurged(a, i + ((size_t)1 << want), i + ((size_t)1 << order));  /* the halves given back may be dirty */
  }
  else if (want > order) ok = buddy_grow_in_place(a->buddy, p, want);
  if (ok) {
    arena_count_bytes(a, -1, a->usable[i], order);
    arena_count_bytes(a, 1, pages, want);
    bitmap_set_range(a->dirty, i, i + pages);
    if (options.guard) {                /* the pages that came or went (see arena_take) */
      size_t lo_p = pages < a->usable[i] ? pages : a->usable[i], hi_p = pages ^ a->usable[i] ^ lo_p;
      char *from = (char *)p + lo_p * OS_PAGE;
      if (!(pages > a->usable[i] ? os_protect_rw : os_protect_none)(from, (hi_p - lo_p) * OS_PAGE))
        fatal(CALL_REALLOC, p, "mprotect failed (guard=1)");
    }
    a->usable[i] = (uint16_t)pages;
  }
  lock_release(&a->lock);
  if (lo < hi) os_purge((char *)a + lo * OS_PAGE, (hi - lo) * OS_PAGE);   /* our block: safe unlocked */
  return ok;
}

/* Purge the dirty pages of [from, to), pages not handed to the program
 * (a's lock held); returns the bytes. `decayed` purges with
 * os_purge_decayed, whose pages may keep their bytes (MADV_FREE): their
 * dirty bits then stay set, for calloc. */
static size_t arena_purge_range(arena_t *a, size_t from, size_t to, bool decayed) {
  ASSERT(lock_held(RANK_ARENA) && from <= to && to <= ARENA_PAGES);
  if (!dirty_any(a, from, to)) return 0;
  char *p = (char *)a + from * OS_PAGE;
  size_t lo, hi;
  if (decayed && !os_purge_decayed(p, (to - from) * OS_PAGE, options.purge_free)) return (to - from) * OS_PAGE;
  arena_dirty_take(a, from, to, &lo, &hi);
  if (!decayed) os_purge((char *)a + lo * OS_PAGE, (hi - lo) * OS_PAGE);
  return (to - from) * OS_PAGE;
}

/* The first page at or after i that is not inside an allocated block
 * starting before i (such a block starts at i aligned down to its size). */
static size_t arena_resync(const arena_t *a, size_t i) {
  for (unsigned o = 1; ((size_t)OS_PAGE << o) <= LARGE_MAX; o++) {
    size_t start = i & ~(((size_t)1 << o) - 1);
    if (start == i) continue;
    int order = buddy_order_of(a->buddy, (const char *)a + start * OS_PAGE);
    if (order >= 0 && start + ((size_t)1 << order) > i) return start + ((size_t)1 << order);
  }
  return i;
}

/* Purge the free dirty pages of a (its lock held), dropping the lock every
 * ARENA_PURGE_CHUNK purged pages so an allocation never waits long. The walk goes
 * from block start to block start: a free page is one not covered by an
 * allocated block, the buddy is asked for each dirty page's block; after a
 * relock it resynchronises (a block may have been allocated over the page
 * where it stood). `decayed` (the decay) leaves hot pages for a later pass;
 * otherwise (trim) every free dirty page goes. */
#define ARENA_PURGE_CHUNK 256
static size_t arena_purge_free(arena_t *a, bool decayed) {
  size_t purged = 0, since_unlock = 0;
  bool left = false;                  /* hot dirty pages stay for a later pass */
  EXPENSIVE_ASSERT(buddy_check(a->buddy));
  for (size_t i = 0; i < ARENA_PAGES; i++) {
    if (!bitmap_get(a->dirty, i)) { if (i % 64 == 0 && !a->dirty[i / 64]) i += 63; continue; }
    int order = buddy_order_of(a->buddy, (char *)a + i * OS_PAGE);
    if (order >= 0) {                 /* an allocated block: purge its dirty tail */
      size_t end = i + ((size_t)1 << order), from = i + a->usable[i];
      if (decayed && hot_any(a, from, end)) left |= dirty_any(a, from, end);
      else purged += arena_purge_range(a, from, end, decayed);
      i = end - 1;
      continue;
    }
    if (decayed && hot_any(a, i, i + 1)) { left = true; continue; }
    size_t end = i + 1;
    while (end < ARENA_PAGES && bitmap_get(a->dirty, end) &&
           buddy_order_of(a->buddy, (char *)a + end * OS_PAGE) < 0 && end - i < ARENA_PURGE_CHUNK &&
           !(decayed && hot_any(a, end, end + 1)))
      end++;
    purged += arena_purge_range(a, i, end, decayed);
    since_unlock += end - i;
    i = end - 1;
    if (since_unlock >= ARENA_PURGE_CHUNK) {
      lock_release(&a->lock);
      lock_acquire(&a->lock);
      since_unlock = 0;
      i = arena_resync(a, end) - 1;
    }
  }
  a->unpurged = left;
  return purged;
}


/* Under a's lock: the hot maps whose last mark is `age` old are cold. */
size_t arena_decay(arena_t *a, uint32_t now, uint32_t age, bool *younger) {
  size_t purged = 0;
  lock_acquire(&a->lock);
  if (a->unpurged) {
    arena_cool(a, now, age);
    purged = arena_purge_free(a, true);
    if (a->unpurged) *younger = true;
    arena_hot_rotate(a, now);               /* the pages cool */
  }
  lock_release(&a->lock);
  return purged;
}

size_t arena_trim(arena_t *a) {
  lock_acquire(&a->lock);
  size_t purged = arena_purge_free(a, false);
  lock_release(&a->lock);
  return purged;
}

void arena_stats(arena_t *a, tier_stats_t *st) {
  size_t allocated = atomic_load_relaxed(&a->allocated), resident = os_resident(a, ARENA_SIZE);
  st->nmalloc += atomic_load_relaxed(&a->nmalloc);
  st->nfree += atomic_load_relaxed(&a->nfree);
  st->allocated += allocated;
  st->active += atomic_load_relaxed(&a->active);
  st->mapped += ARENA_SIZE;
  st->resident += resident;
  st->dirty += resident > allocated ? resident - allocated : 0;
}

bool arena_valid(arena_t *a) {
  lock_acquire(&a->lock);
  bool ok = arena_intact(a) && buddy_check(a->buddy);
  for (size_t i = 0; i < ARENA_PAGES && ok; i++) {
    int order = buddy_order_of(a->buddy, (char *)a + i * OS_PAGE);
    if (order < 0) continue;
    ok = a->usable[i] >= 1 && a->usable[i] <= ((size_t)1 << order) && dirty_count(a, i, i + a->usable[i]) == a->usable[i];
    i += ((size_t)1 << order) - 1;
  }
  lock_release(&a->lock);
  return ok;
}
