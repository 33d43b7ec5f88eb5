/* large.c - buddy arenas for the large tier.
 *
 * Arena layout: arena_t (lock, canaries, the dirty-page bitmap and the usable
 * size of each block) at the arena's start, then the buddy core's metadata,
 * then blocks; all of it is one strata_buddy over the arena with arena_t as
 * its prefix.
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
 * refaulted the pages a steady workload reuses within milliseconds.
 */
#include "large.h"
#include "buddy.h"
#include "decay.h"
#include "heap.h"
#include "init.h"
#include "os.h"

#include <string.h>

#define ARENA_PAGES   (ARENA_SIZE / OS_PAGE)
#define ARENA_MAGIC   0x5354524141524e41ull   /* "STRAARNA" */
#define LARGE_ARENAS  256                     /* at most 16 GiB of arenas */

typedef struct arena {
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
   * arenas), read with relaxed loads by large_stats. */
  _Atomic uint64_t nmalloc, nfree;
  _Atomic size_t allocated, active;    /* usable / block bytes */
  uint64_t canary_hi;
} arena_t;

static arena_t *large_arenas[LARGE_ARENAS];

/* Under a's lock. */
static void count_add(_Atomic uint64_t *c, int64_t v) { atomic_store_relaxed(c, atomic_load_relaxed(c) + (uint64_t)v); }
/* A block of 2^order pages, `pages` of them usable, comes (sign 1) or goes
 * (-1). */
static void large_count_bytes(arena_t *a, int sign, size_t pages, unsigned order) {
  count_add(&a->allocated, sign * (int64_t)(pages * OS_PAGE));
  count_add(&a->active, sign * ((int64_t)OS_PAGE << order));
}
static _Atomic unsigned large_count;
static lock_t large_grow_lock = LOCK_INIT;
/* Threads start at different arenas (large_next hands out the first one;
 * large_hint is one more than the arena the thread last used, 0 for none
 * yet), and a thread that finds every arena locked adds one while there are
 * fewer than the processors, so threads that allocate large blocks at once
 * mostly hold different locks. */
static __thread unsigned large_hint __attribute__((tls_model("initial-exec")));
static _Atomic unsigned large_next;

static bool arena_intact(const arena_t *a) {
  uint64_t key = ARENA_MAGIC ^ (uintptr_t)a;
  return a->canary_lo == key && a->canary_hi == key && buddy_check_canaries(a->buddy);
}

static arena_t *arena_new(void) {
  arena_t *a = pageheap_alloc_arena();
  if (!a) return NULL;
  a->canary_lo = a->canary_hi = ARENA_MAGIC ^ (uintptr_t)a;
  lock_reinit(&a->lock);
  a->buddy = strata_buddy_init(a, ARENA_SIZE, sizeof(arena_t), OS_PAGE);
  if (!a->buddy) { pageheap_free_arena(a); return NULL; }
  size_t meta = buddy_reserved_bytes(a->buddy);    /* guard=1: blocks fault until handed out */
  if (options.guard && !os_protect_none((char *)a + meta, ARENA_SIZE - meta)) {
    pageheap_free_arena(a);
    return NULL;
  }
  return a;
}

/* Bits [from, to) of a page bitmap: set them, or is any set; a word at a
 * time. The mask of the bits of [from, to) in from's word: */
static uint64_t bits_mask(size_t from, size_t to, size_t *end) {
  *end = (from | 63) + 1 < to ? (from | 63) + 1 : to;
  size_t n = *end - from;
  return (n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1) << (from % 64);
}
static void bits_set(uint64_t *map, size_t from, size_t to) {
  for (size_t end; from < to; from = end) map[from / 64] |= bits_mask(from, to, &end);
}
static bool bits_any(const uint64_t *map, size_t from, size_t to) {
  for (size_t end; from < to; from = end)
    if (map[from / 64] & bits_mask(from, to, &end)) return true;
  return false;
}
static void dirty_set(arena_t *a, size_t from, size_t to) { bits_set(a->dirty, from, to); }
static bool dirty_any(const arena_t *a, size_t from, size_t to) { return bits_any(a->dirty, from, to); }
static bool hot_any(const arena_t *a, size_t from, size_t to) {
  return bits_any(a->hot[0], from, to) || bits_any(a->hot[1], from, to);
}
/* Clear the bits [from, to) of the dirty map and report the first and last
 * page that was dirty (*lo > *hi when none was). */
static void dirty_take(arena_t *a, size_t from, size_t to, size_t *lo, size_t *hi) {
  *lo = to; *hi = 0;
  for (size_t i = from; i < to; i++)
    if (a->dirty[i / 64] >> (i % 64) & 1) {
      a->dirty[i / 64] &= ~((uint64_t)1 << (i % 64));
      if (*lo == to) *lo = i;
      *hi = i + 1;
    }
}

static void arena_hot_rotate(arena_t *a, uint32_t now) {
  memcpy(a->hot[1], a->hot[0], sizeof a->hot[0]);
  memset(a->hot[0], 0, sizeof a->hot[0]);
  a->hot_closed_ms = now;
  a->hot_opened_ms = 0;
}

/* Under a's lock: pages [from, to) may be dirty and are free or past a
 * block's usable size: the decay purges them once they have cooled. */
static void arena_note_unpurged(arena_t *a, size_t from, size_t to) {
  uint32_t now = os_now_ms() | 1;      /* 0: hot[0] is not open */
  decay_note((to - from) * OS_PAGE);
  if (a->hot_opened_ms && now - a->hot_opened_ms >= options.decay_ms / 2) arena_hot_rotate(a, now);
  if (!a->hot_opened_ms) a->hot_opened_ms = now;
  a->hot_marked_ms = now;
  bits_set(a->hot[0], from, to);
  a->unpurged = true;
}

/* Dirty pages in [from, to). */
static size_t dirty_count(const arena_t *a, size_t from, size_t to) {
  size_t n = 0;
  for (size_t end; from < to; from = end) n += (size_t)__builtin_popcountll(a->dirty[from / 64] & bits_mask(from, to, &end));
  return n;
}

/* Where a block goes: at `at`, inside the free block `in`, with `dirty` of
 * its used pages dirty. */
typedef struct { char *at, *in; size_t dirty; } pick_t;

/* Into *best if better: the place for a block of 2^order pages, the first
 * `pages` used, in the free block f of order k that has the most of them
 * dirty; true when all are (no better place exists). */
static bool pick_in(const arena_t *a, char *f, unsigned k, unsigned order, size_t pages, pick_t *best) {
  size_t from = (size_t)(f - (char *)a) / OS_PAGE, to = from + ((size_t)1 << k);
  if (!dirty_any(a, from, to)) return false;
  for (size_t i = from; i < to; i += (size_t)1 << order) {
    size_t d = dirty_count(a, i, i + pages);
    if (d > best->dirty) *best = (pick_t){ (char *)a + i * OS_PAGE, f, d };
    if (d == pages) return true;
  }
  return false;
}

/* Under a's lock: the place for a block of 2^order pages, the first `pages`
 * used, whose used pages are the most dirty, among the first
 * LARGE_PICK_BLOCKS free blocks of each order (at == NULL: none is free).
 * Pages a freed block left resident are reused before clean ones are
 * faulted in, so resident memory follows the live blocks: the buddy's own
 * choice (the newest free block of the smallest order) took clean pages
 * while dirty ones of other orders waited for the decay (mimalloc-bench's
 * malloc-large peaked at 3.3 times its live bytes). Ties go to that same
 * choice, which is all there is when no free page of a is dirty
 * (!unpurged). */
#define LARGE_PICK_BLOCKS 8
static pick_t arena_pick(const arena_t *a, unsigned order, size_t pages) {
  pick_t best = { NULL, NULL, 0 };
  for (unsigned k = order; k <= buddy_max_order(a->buddy); k++) {
    char *f = buddy_first_free(a->buddy, k);
    if (!f) continue;
    if (!best.at) {
      best = (pick_t){ f, f, 0 };
      if (!a->unpurged) break;
    }
    for (int n = 0; f && n < LARGE_PICK_BLOCKS; n++, f = buddy_next_free(a->buddy, f))
      if (pick_in(a, f, k, order, pages, &best)) return best;
  }
  return best;
}

/* Under a's lock: take the block arena_pick chose, mark its usable pages.
 * A dirty tail (pages past the request that a previous user wrote) is left
 * to the decay, which purges it like free pages: purging it here cost a
 * madvise per allocation. */
static void *arena_take(arena_t *a, pick_t pick, unsigned order, size_t pages, uint64_t *dirty) {
  char *p = buddy_alloc_in(a->buddy, pick.in, pick.at, order);
  size_t i = (size_t)(p - (char *)a) / OS_PAGE;
  if (dirty)                          /* calloc: which pages may be non-zero */
    for (size_t k = 0; k < pages; k++)
      dirty[k / 64] = (dirty[k / 64] & ~((uint64_t)1 << (k % 64))) |
                      (uint64_t)(a->dirty[(i + k) / 64] >> ((i + k) % 64) & 1) << (k % 64);
  if (dirty_any(a, i + pages, i + ((size_t)1 << order)))
    arena_note_unpurged(a, i + pages, i + ((size_t)1 << order));
  dirty_set(a, i, i + pages);
  decay_note_growth(pages * OS_PAGE);
  a->usable[i] = (uint16_t)pages;
  count_add(&a->nmalloc, 1);
  large_count_bytes(a, 1, pages, order);
  return p;
}

/* Under a's lock: its best block, or NULL. */
static void *arena_alloc(arena_t *a, unsigned order, size_t pages, uint64_t *dirty) {
  pick_t pick = arena_pick(a, order, pages);
  return pick.at ? arena_take(a, pick, order, pages, dirty) : NULL;
}

/* A block from the arenas added since the caller saw n, or from a new one
 * (only while fewer than the processors when `spread`: contention, not a
 * lack of space). NULL when out of memory or, with spread, when another
 * thread added the arenas meanwhile. */
static void *large_grow(unsigned n, unsigned order, size_t pages, uint64_t *dirty, bool spread) {
  void *p = NULL;
  arena_t *a;
  lock_acquire(&large_grow_lock);
  unsigned seen = n;
  n = atomic_load_acquire(&large_count);
  for (unsigned k = seen; k < n && !p; k++) {   /* added while we waited */
    a = large_arenas[k];
    lock_acquire(&a->lock);
    p = arena_alloc(a, order, pages, dirty);
    lock_release(&a->lock);
    if (p) large_hint = k + 1;
  }
  if (!p && n < LARGE_ARENAS && !(spread && n >= os_cpus()) && (a = arena_new())) {
    lock_acquire(&a->lock);
    p = arena_alloc(a, order, pages, dirty);
    lock_release(&a->lock);
    large_arenas[n] = a;
    atomic_store_release(&large_count, n + 1);
    large_hint = n + 1;
  }
  lock_release(&large_grow_lock);
  return p;
}

#define LARGE_SEARCH_PAGES 64

/* ---- runs of the page heap: blocks where no arena fits ---------------------
 * Under an address-space limit an arena (64 MiB) may not be mappable while
 * free pages of the small segments, or a short new segment, still are: a
 * block then takes a run of pages (not with guard=1, whose freed blocks
 * must fault: the huge tier unmaps them). Counted with the arenas'. */
static _Atomic uint64_t run_nmalloc, run_nfree;
static _Atomic size_t run_bytes;

static void *large_run_alloc(size_t size, size_t align, bool zero) {
  size_t pages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
  if (align > PAGE_SIZE || pages > PAGEHEAP_MAX_RUN || options.guard) return NULL;
  span_t *s = pageheap_alloc_span((uint32_t)pages, SPAN_LARGE);
  if (!s) return NULL;
  /* Runs purged with MADV_FREE come back "clean" but may keep bytes. */
  if (zero && (s->dirty || os_lazy_purge)) memset(s->start, 0, size);
  atomic_add_relaxed(&run_nmalloc, 1);
  atomic_add_relaxed(&run_bytes, pages * PAGE_SIZE);
  decay_note_growth(pages * PAGE_SIZE);
  return s->start;
}

static span_t *large_run_checked(const void *p, const char *call) {
  span_t *s = span_of(p);
  CHECK(s->kind == SPAN_LARGE && s->start == p, call, p, MSG_NOT_BLOCK);
  return s;
}

size_t large_run_usable(const void *p, const char *call) {
  return (size_t)large_run_checked(p, call)->npages * PAGE_SIZE;
}

void large_run_free(void *p, const char *call) {
  span_t *s = large_run_checked(p, call);
  atomic_add_relaxed(&run_nfree, 1);
  atomic_sub_relaxed(&run_bytes, (size_t)s->npages * PAGE_SIZE);
  pageheap_free_span(s);
}

void *large_alloc(size_t size, size_t align, bool zero) {
  uint64_t dirty_buf[LARGE_MAX / OS_PAGE / 64], *dirty = zero ? dirty_buf : NULL;
  size_t pages = (size + OS_PAGE - 1) / OS_PAGE;
  size_t bytes = pages * OS_PAGE > align ? pages * OS_PAGE : align;
  unsigned order = log2_ceil(bytes / OS_PAGE);
  if (((size_t)OS_PAGE << order) > LARGE_MAX) return NULL;
  void *p = NULL;
  arena_t *a = NULL;
  unsigned n = atomic_load_acquire(&large_count);
  if (!large_hint) large_hint = atomic_fetch_add_explicit(&large_next, 1, memory_order_relaxed) + 1;
  unsigned first = large_hint - 1;
  /* A first pass over the arenas, without waiting for a lock, takes a
   * block whose used pages are all dirty, or else notes the arena of the
   * dirtiest, which it then takes from: resident pages are reused across
   * arenas as well. Only for blocks of LARGE_SEARCH_PAGES or more, whose
   * faults cost more than looking at every arena: a smaller one takes the
   * first arena's best (a program growing by blocks of 40 KiB ran twice as
   * slow when each looked at all of its 38 arenas). Next, after a first
   * pass that found every lock taken, a new arena while there are fewer
   * than the processors; then a pass that waits for each lock, then a new
   * arena. */
  bool busy = true;
  unsigned best = n;
  size_t best_dirty = 0;
  for (unsigned k = 0; k < n && !p; k++) {
    unsigned ak = (first + k) % n;
    a = large_arenas[ak];
    if (!lock_try(&a->lock)) continue;
    busy = false;
    pick_t pick = arena_pick(a, order, pages);
    if (pick.at && (pick.dirty == pages || pages < LARGE_SEARCH_PAGES)) {
      p = arena_take(a, pick, order, pages, dirty);
      large_hint = ak + 1;
    } else if (pick.at && (best == n || pick.dirty > best_dirty)) {
      best = ak;
      best_dirty = pick.dirty;
    }
    lock_release(&a->lock);
  }
  if (!p && busy && n && n < os_cpus()) p = large_grow(n, order, pages, dirty, true);
  for (unsigned k = 0; k < n && !p; k++) {
    unsigned ak = best < n ? (best + k) % n : (first + k) % n;
    a = large_arenas[ak];
    lock_acquire(&a->lock);
    p = arena_alloc(a, order, pages, dirty);
    lock_release(&a->lock);
    if (p) large_hint = ak + 1;
  }
  if (!p && !(p = large_grow(n, order, pages, dirty, false))) return large_run_alloc(size, align, zero);
  /* guard=1: only a block's usable pages are accessible, and only while it
   * is allocated, so a write after free or past the pages faults. */
  if (options.guard && !os_protect_rw(p, pages * OS_PAGE)) fatal("malloc", p, "mprotect failed (guard=1)");
  if (zero) {                         /* clear the pages that may be dirty */
    for (size_t k = 0; k < pages; k++)
      if (dirty[k / 64] >> (k % 64) & 1) {
        size_t end = k + 1;
        while (end < pages && (dirty[end / 64] >> (end % 64) & 1)) end++;
        size_t to = end * OS_PAGE < size ? end * OS_PAGE : size;
        memset((char *)p + k * OS_PAGE, 0, to - k * OS_PAGE);
        k = end;
      }
  }
  return p;
}

static arena_t *arena_of(const void *p, const char *call) {
  arena_t *a = (arena_t *)(((uintptr_t)p - 1) & ~(uintptr_t)ARENA_MASK);
  CHECK(arena_intact(a), call, p, "large arena metadata corrupted");
  return a;
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

void large_free(void *p, const char *call) {
  arena_t *a = arena_of(p, call);
  size_t i = (size_t)((char *)p - (char *)a) / OS_PAGE;
  unsigned order = arena_lock_block(a, p, call);
  count_add(&a->nfree, 1);
  large_count_bytes(a, -1, a->usable[i], order);
  if (options.guard && !os_protect_none(p, (size_t)a->usable[i] * OS_PAGE))
    fatal(call, p, "mprotect failed (guard=1)");
  buddy_free_block(a->buddy, p);      /* its dirty pages: for the decay */
  arena_note_unpurged(a, i, i + ((size_t)1 << order));
  lock_release(&a->lock);
}

size_t large_usable(const void *p, const char *call) {
  arena_t *a = arena_of(p, call);
  arena_lock_block(a, p, call);
  size_t pages = a->usable[(size_t)((const char *)p - (const char *)a) / OS_PAGE];
  lock_release(&a->lock);
  return pages * OS_PAGE;
}

bool large_resize(void *p, size_t size) {
  arena_t *a = arena_of(p, CALL_REALLOC);
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
    if (pages < end) dirty_take(a, i + pages, i + end, &lo, &hi);
  }
  if (want < order) {
    buddy_shrink(a->buddy, p, want);
    arena_note_unpurged(a, i + ((size_t)1 << want), i + ((size_t)1 << order));  /* the halves given back may be dirty */
  }
  else if (want > order) ok = buddy_grow_in_place(a->buddy, p, want);
  if (ok) {
    large_count_bytes(a, -1, a->usable[i], order);
    large_count_bytes(a, 1, pages, want);
    dirty_set(a, i, i + pages);
    if (options.guard) {                /* the pages that came or went (see large_alloc) */
      size_t lo_p = pages < a->usable[i] ? pages : a->usable[i], hi_p = pages ^ a->usable[i] ^ lo_p;
      char *from = (char *)p + lo_p * OS_PAGE;
      if (!(pages > a->usable[i] ? os_protect_rw : os_protect_none)(from, (hi_p - lo_p) * OS_PAGE))
        fatal(CALL_REALLOC, p, "mprotect failed (guard=1)");
    }
    a->usable[i] = (uint16_t)pages;
  }
  lock_release(&a->lock);
  if (lo < hi)                      /* our own block: safe after the unlock */ os_purge((char *)a + lo * OS_PAGE, (hi - lo) * OS_PAGE);
  return ok;
}

/* Purge the dirty pages of [from, to), pages not handed to the program
 * (a's lock held); returns the bytes. `decayed` purges with
 * os_purge_decayed, whose pages may keep their bytes (MADV_FREE): their
 * dirty bits then stay set, for calloc. */
static size_t arena_purge_range(arena_t *a, size_t from, size_t to, bool decayed) {
  if (!dirty_any(a, from, to)) return 0;
  char *p = (char *)a + from * OS_PAGE;
  size_t lo, hi;
  if (decayed && !os_purge_decayed(p, (to - from) * OS_PAGE)) return (to - from) * OS_PAGE;
  dirty_take(a, from, to, &lo, &hi);
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
 * PURGE_CHUNK purged pages so an allocation never waits long. The walk goes
 * from block start to block start: a free page is one not covered by an
 * allocated block, the buddy is asked for each dirty page's block; after a
 * relock it resynchronises (a block may have been allocated over the page
 * where it stood). `decayed` (the decay) leaves hot pages for a later pass;
 * otherwise (trim) every free dirty page goes. */
#define PURGE_CHUNK 256
static size_t arena_purge_free(arena_t *a, bool decayed) {
  size_t purged = 0, since_unlock = 0;
  bool left = false;                  /* hot dirty pages stay for a later pass */
  EXPENSIVE_ASSERT(buddy_check(a->buddy));
  for (size_t i = 0; i < ARENA_PAGES; i++) {
    if (!(a->dirty[i / 64] >> (i % 64) & 1)) { if (i % 64 == 0 && !a->dirty[i / 64]) i += 63; continue; }
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
    while (end < ARENA_PAGES && (a->dirty[end / 64] >> (end % 64) & 1) &&
           buddy_order_of(a->buddy, (char *)a + end * OS_PAGE) < 0 && end - i < PURGE_CHUNK &&
           !(decayed && hot_any(a, end, end + 1)))
      end++;
    purged += arena_purge_range(a, i, end, decayed);
    since_unlock += end - i;
    i = end - 1;
    if (since_unlock >= PURGE_CHUNK) {
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
static void arena_cool(arena_t *a, uint32_t now, uint32_t age) {
  if (now - a->hot_closed_ms >= age) memset(a->hot[1], 0, sizeof a->hot[1]);
  if (now - a->hot_marked_ms >= age) {          /* and hot[1] is older still */
    memset(a->hot[0], 0, sizeof a->hot[0]);
    memset(a->hot[1], 0, sizeof a->hot[1]);
  }
}

size_t large_decay(uint32_t now, uint32_t age, bool *younger) {
  size_t purged = 0;
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) {
    arena_t *a = large_arenas[k];
    lock_acquire(&a->lock);
    if (a->unpurged) {
      arena_cool(a, now, age);
      purged += arena_purge_free(a, true);
      if (a->unpurged) *younger = true;
      arena_hot_rotate(a, now);               /* the pages cool */
    }
    lock_release(&a->lock);
  }
  return purged;
}

bool large_trim(void) {
  size_t purged = 0;
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) {
    arena_t *a = large_arenas[k];
    lock_acquire(&a->lock);
    purged += arena_purge_free(a, false);
    lock_release(&a->lock);
  }
  return purged > 0;
}

void large_stats(large_stats_t *st) {
  *st = (large_stats_t){0};
  st->nmalloc = atomic_load_relaxed(&run_nmalloc);
  st->nfree = atomic_load_relaxed(&run_nfree);
  st->allocated = st->active = atomic_load_relaxed(&run_bytes);
  unsigned n = atomic_load_acquire(&large_count);
  st->arenas = n;
  for (unsigned k = 0; k < n; k++) {
    arena_t *a = large_arenas[k];
    st->nmalloc += atomic_load_relaxed(&a->nmalloc);
    st->nfree += atomic_load_relaxed(&a->nfree);
    st->allocated += atomic_load_relaxed(&a->allocated);
    st->active += atomic_load_relaxed(&a->active);
    st->resident += os_resident(a, ARENA_SIZE);
  }
}

void large_fork_prepare(void) {
  lock_acquire(&large_grow_lock);
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) lock_acquire(&large_arenas[k]->lock);
}
void large_fork_parent(void) {
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = n; k-- > 0;) lock_release(&large_arenas[k]->lock);
  lock_release(&large_grow_lock);
}
void large_fork_child(void) {
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) lock_reinit(&large_arenas[k]->lock);
  lock_reinit(&large_grow_lock);
}
