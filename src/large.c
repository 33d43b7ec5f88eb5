/* large.c - the large tier: sizes above SMALL_MAX up to the huge
 * threshold, from the buddy arenas (arena.c), and, under an address-space
 * limit that leaves no room for an arena, from runs of the page heap.
 *
 * Threads start at different arenas (large_next hands out the first one;
 * large_hint is one more than the arena the thread last used, 0 for none
 * yet), and a thread that finds every arena locked adds one while there are
 * fewer than the processors, so threads that allocate large blocks at once
 * mostly hold different locks.
 *
 * Locks: large_grow_lock around adding an arena (an arena's lock may be
 * taken under it); each arena's, one at a time.
 */
#include "large.h"
#include "arena.h"
#include "backlog.h"
#include "bitmap.h"
#include "options.h"
#include "os.h"
#include "pageheap.h"

#include <string.h>

#define LARGE_ARENAS  256                     /* at most 16 GiB of arenas */

static arena_t *large_arenas[LARGE_ARENAS];
static _Atomic unsigned large_count;
static lock_t large_grow_lock = LOCK_INIT(RANK_LARGE_GROW);
static __thread unsigned large_hint __attribute__((tls_model("initial-exec")));
static _Atomic unsigned large_next;

/* a's best block, or NULL. */
static void *large_alloc_in(arena_t *a, unsigned order, size_t pages, uint64_t *dirty) {
  lock_acquire(arena_lock(a));
  arena_pick_t pick = arena_pick(a, order, pages);
  void *p = pick.at ? arena_take(a, pick, order, pages, dirty) : NULL;
  lock_release(arena_lock(a));
  return p;
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
    p = large_alloc_in(a, order, pages, dirty);
    if (p) large_hint = k + 1;
  }
  if (!p && n < LARGE_ARENAS && !(spread && n >= os_cpus()) && (a = arena_new())) {
    p = large_alloc_in(a, order, pages, dirty);
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
  ASSERT(is_pow2(align));
  size_t pages = (size + PAGE_SIZE - 1) / PAGE_SIZE;
  if (align > PAGE_SIZE || pages > PAGEHEAP_MAX_RUN || options.guard) return NULL;
  span_t *s = pageheap_alloc_span((uint32_t)pages, SPAN_LARGE);
  if (!s) return NULL;
  /* Runs purged with MADV_FREE come back "clean" but may keep bytes. */
  if (zero && (s->dirty || options.purge_free)) memset(s->start, 0, size);
  atomic_add_relaxed(&run_nmalloc, 1);
  atomic_add_relaxed(&run_bytes, pages * PAGE_SIZE);
  backlog_grew(pages * PAGE_SIZE);
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
  ASSERT(is_pow2(align) && align <= LARGE_MAX);
  uint64_t dirty_buf[LARGE_MAX / OS_PAGE / 64], *dirty = zero ? dirty_buf : NULL;
  /* Size 0 (memalign with a big alignment): one usable page, a block of
   * its own as for any malloc(0). */
  size_t pages = size ? (size + OS_PAGE - 1) / OS_PAGE : 1;
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
   * faults cost more than looking at every arena; a smaller one takes the
   * first arena's best, as a program growing by many such blocks would
   * otherwise search every arena for each. Next, after a first
   * pass that found every lock taken, a new arena while there are fewer
   * than the processors; then a pass that waits for each lock, then a new
   * arena. */
  bool busy = true;
  unsigned best = n;
  size_t best_dirty = 0;
  for (unsigned k = 0; k < n && !p; k++) {
    unsigned ak = (first + k) % n;
    a = large_arenas[ak];
    if (!lock_try(arena_lock(a))) continue;
    busy = false;
    arena_pick_t pick = arena_pick(a, order, pages);
    if (pick.at && (pick.dirty == pages || pages < LARGE_SEARCH_PAGES)) {
      p = arena_take(a, pick, order, pages, dirty);
      large_hint = ak + 1;
    } else if (pick.at && (best == n || pick.dirty > best_dirty)) {
      best = ak;
      best_dirty = pick.dirty;
    }
    lock_release(arena_lock(a));
  }
  if (!p && busy && n && n < os_cpus()) p = large_grow(n, order, pages, dirty, true);
  for (unsigned k = 0; k < n && !p; k++) {
    unsigned ak = best < n ? (best + k) % n : (first + k) % n;
    p = large_alloc_in(large_arenas[ak], order, pages, dirty);
    if (p) large_hint = ak + 1;
  }
  if (!p && !(p = large_grow(n, order, pages, dirty, false))) return large_run_alloc(size, align, zero);
  /* guard=1: the usable pages become accessible (arena.c), unlocked, as the
   * block is ours. */
  if (options.guard && !os_protect_rw(p, pages * OS_PAGE)) fatal("malloc", p, "mprotect failed (guard=1)");
  if (zero) {                         /* clear the pages that may be dirty */
    for (size_t k = 0; k < pages; k++)
      if (bitmap_get(dirty, k)) {
        size_t end = k + 1;
        while (end < pages && bitmap_get(dirty, end)) end++;
        size_t to = end * OS_PAGE < size ? end * OS_PAGE : size;
        memset((char *)p + k * OS_PAGE, 0, to - k * OS_PAGE);
        k = end;
      }
  }
  return p;
}

void large_free(void *p, const char *call) { arena_free(arena_of(p, call), p, call); }

size_t large_usable(const void *p, const char *call) { return arena_usable(arena_of(p, call), p, call); }

bool large_resize(void *p, size_t size) { return arena_resize(arena_of(p, CALL_REALLOC), p, size); }

/* ---- the tier ------------------------------------------------------------------ */
static void large_decay(uint32_t now, uint32_t age, bool *younger) {
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) arena_decay(large_arenas[k], now, age, younger);
}

static bool large_trim(void) {
  size_t purged = 0;
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) purged += arena_trim(large_arenas[k]);
  return purged > 0;
}

static void large_stats(tier_stats_t *st) {
  st->nmalloc += atomic_load_relaxed(&run_nmalloc);
  st->nfree += atomic_load_relaxed(&run_nfree);
  st->allocated += atomic_load_relaxed(&run_bytes);
  st->active += atomic_load_relaxed(&run_bytes);
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) arena_stats(large_arenas[k], st);
}


/* The arenas' locks, after the grow lock (in `locks`). */
static void large_fork_prepare(void) {
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) lock_acquire_fork(arena_lock(large_arenas[k]));
}
static void large_fork_parent(void) {
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = n; k-- > 0;) lock_release_fork(arena_lock(large_arenas[k]));
}
static void large_fork_child(void) {
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++) lock_reinit(arena_lock(large_arenas[k]));
}

static bool large_valid(void) {
  unsigned n = atomic_load_acquire(&large_count);
  for (unsigned k = 0; k < n; k++)
    if (!arena_valid(large_arenas[k])) return false;
  return true;
}

const tier_t large_tier = {
  .name = "large",
  .decay = large_decay,
  .trim = large_trim,
  .locks = { &large_grow_lock },
  .fork_prepare = large_fork_prepare,
  .fork_parent = large_fork_parent,
  .fork_child = large_fork_child,
  .stats = large_stats,
  .valid = large_valid,
};
