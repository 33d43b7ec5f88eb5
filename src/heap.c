/* heap.c - thread heaps: refill of bins, parking full spans, remote frees,
 * thread exit and adoption of abandoned spans.
 *
 * Lock order (outer first; every lock here is taken alone, never nested, except
 * that any of them may call into the page heap, whose lock is a leaf):
 *   heap_orphan_lock -> heap_pool_lock -> heap_abandoned_lock
 *   -> each heap's cache_lock (one at a time; fork: in heap_all order) -> page heap
 */
#include "heap.h"
#include "decay.h"
#include "init.h"
#include "os.h"

#include <string.h>

__thread heap_t *heap_tls __attribute__((tls_model("initial-exec"))) = &heap_empty;
heap_t heap_empty;

/* Thread state: a thread whose heap was torn down (by the thread-exit key
 * destructor) allocates from the orphan heap under a lock; its frees are
 * remote frees, valid from any thread. */
enum { THREAD_NEW = 0, THREAD_LIVE, THREAD_DEAD };
static __thread uint8_t heap_thread_state __attribute__((tls_model("initial-exec")));

static pthread_key_t heap_key;
static lock_t heap_orphan_lock = LOCK_INIT;
static heap_t heap_orphan;
static lock_t heap_pool_lock = LOCK_INIT;
static heap_t *heap_pool;                  /* free heaps (next_free) */
static lock_t heap_abandoned_lock = LOCK_INIT;
static span_t *heap_abandoned[CLASS_COUNT]; /* spans of exited threads (next,
                                              prev; span.abandoned) */
static heap_t *_Atomic heap_all;           /* every heap made (next_all) */
static _Atomic unsigned heap_live;         /* heaps held by live threads */
/* Frees by threads that have no heap (yet, or any more), for statistics. */
static _Atomic uint64_t heap_nfree_homeless[CLASS_COUNT];

/* ---- bin lists (owner only) -------------------------------------------- */
static void list_push(span_t **head, span_t *s) {
  s->prev = NULL;
  s->next = *head;
  if (*head) (*head)->prev = s;
  *head = s;
}
static void list_insert_second(span_t **head, span_t *s) {
  if (!*head) { list_push(head, s); return; }
  s->prev = *head;
  s->next = (*head)->next;
  if (s->next) s->next->prev = s;
  (*head)->next = s;
}
static void list_remove(span_t **head, span_t *s) {
  if (s->prev) s->prev->next = s->next;
  else *head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
}

/* ---- parking: a span with nothing to hand out leaves the bin's list -----
 * The owner unparks it when a free gives the span a block back, or when it
 * takes the span from its ready list (a remote free queued it). A remote free
 * that raced in leaves the span on `spans` (the refill then takes that
 * block). */
static void heap_park(bin_t *bin, span_t *s) {
  uintptr_t x = atomic_load_relaxed(&s->xfree);
  do if (xf_list(x)) return;
  while (!atomic_compare_exchange_weak_explicit(&s->xfree, &x, x | XF_FULL,
                                                memory_order_relaxed, memory_order_relaxed));
  list_remove(&bin->spans, s);
  list_push(&bin->full, s);
}

static NOINLINE void heap_unpark(bin_t *bin, span_t *s) {
  list_remove(&bin->full, s);
  list_insert_second(&bin->spans, s);
  atomic_fetch_and_explicit(&s->xfree, ~(uintptr_t)XF_FULL, memory_order_relaxed);
}

/* ---- empty spans: a per-heap cache, decayed ------------------------------
 * A span that becomes empty on its owner's free leaves its bin for the
 * heap's cache (per class, up to HEAP_CACHE_PAGES), so a thread that frees
 * and reallocates a batch neither carves again nor takes the page-heap lock
 * per span. The cache has its own lock (uncontended: the owner takes it on
 * slow paths only), so the purge thread can give back what stayed there for
 * the decay time, and malloc_trim every heap's cache. Cached spans keep
 * their owner; dirty_ms is when they came.
 * The cache's bound adapts: a refill that finds no span of its class there
 * after an overflow doubles it (up to 64 MiB), so a thread that frees and
 * reallocates batches bigger than 4 MiB stops taking the page-heap lock
 * twice per span; each decay that finds spans unused for the decay time
 * halves it again. Doubling at each overflow filled it to 64 MiB in a
 * thread that frees more spans than it reuses (test_handoff: the freed
 * blocks of exited threads). */
static void heap_cache_put(heap_t *h, bin_t *bin, span_t *s) {
  size_t bytes = (size_t)s->npages * PAGE_SIZE;   /* once cached, s is the decay's */
  list_remove(&bin->spans, s);
  lock_acquire(&h->cache_lock);
  bool keep = h->cached_pages + s->npages <= (uint32_t)HEAP_CACHE_PAGES << h->cache_shift;
  if (!keep) h->cache_overflowed = true;
  if (keep) {
    s->dirty_ms = os_now_ms();
    h->cached_pages += s->npages;
    list_push(&h->cache[s->cls], s);
  }
  /* Past the first 4 MiB, the cache counts as memory for the decay to
   * return (it also starts the purge thread); a small program's cache
   * churn does not. */
  bool note = keep && h->cached_pages > HEAP_CACHE_PAGES;
  lock_release(&h->cache_lock);
  if (!keep) pageheap_free_span(s);
  else if (note) decay_note(bytes);
}

/* Under cache_lock. */
static void heap_cache_unlink(heap_t *h, span_t *s) {
  list_remove(&h->cache[s->cls], s);
  h->cached_pages -= s->npages;
}

static span_t *heap_cache_take(heap_t *h, unsigned cls) {
  lock_acquire(&h->cache_lock);
  span_t *s = h->cache[cls];
  if (s) {
    heap_cache_unlink(h, s);
  } else if (h->cache_overflowed) {     /* ran empty after an overflow */
    if (h->cache_shift < HEAP_CACHE_SHIFT_MAX) h->cache_shift++;
    h->cache_overflowed = false;
  }
  lock_release(&h->cache_lock);
  return s;
}

/* Give back the cached spans of h that are at least `age` ms old. */
static void heap_cache_decay(heap_t *h, uint32_t now, uint32_t age, bool *younger) {
  bool gave = false;
  lock_acquire(&h->cache_lock);
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    for (span_t *s = h->cache[c], *next; s; s = next) {
      next = s->next;
      if (now - s->dirty_ms < age) { *younger = true; continue; }
      heap_cache_unlink(h, s);
      pageheap_free_span(s);
      gave = true;
    }
  if (gave && h->cache_shift) h->cache_shift--;
  lock_release(&h->cache_lock);
}

void heap_decay(uint32_t now, uint32_t age, bool *younger) {
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all)
    heap_cache_decay(h, now, age, younger);
}

/* A span that just became empty (on bin->spans) goes to the cache, unless
 * it is its bin's only span: a thread that allocates and frees a few blocks
 * of a class in turn would otherwise move that span to the cache and back
 * (two locks and a clock read) once per span's worth of blocks, every 8
 * pairs for 1 KiB blocks. So a thread keeps at most one empty span per class
 * (1.75 MiB if it used all 40) until it exits or calls strata_collect.
 * Out of line, so that heap_push_span saves no register. */
static NOINLINE void heap_span_emptied(heap_t *h, span_t *s) {
  if (!span_releasable(s)) return;
  if (h->bins[s->cls].spans == s && !s->next) return;
  heap_cache_put(h, &h->bins[s->cls], s);
  decay_poll(false);                /* no lock is held here; maybe a free */
}

/* ---- sparse spans --------------------------------------------------------
 * A program that frees most of its blocks at random keeps a few in nearly
 * every span, and the spans' pages would stay resident until they empty. So
 * a span of at most SPAN_PURGE_MAX_BLOCKS blocks that has stayed sparse (a
 * quarter or less of its blocks in use) for the decay time gives back the
 * OS pages that hold only free blocks (span_purge_free_pages). The owner
 * does it (only it may touch the span's free list), from heap_tick, at most
 * once per half decay period; the purge thread's sweep does it for the
 * spans of exited threads (the abandoned lock makes it their owner). A span
 * that is refilled meanwhile is not sparse any more, so a workload whose
 * spans swing around the mark does not purge and refault their pages
 * (purging at the crossing itself cost larson about 15 % of its speed). */
static bool heap_sparse(const span_t *s) { return s->used <= s->count / 4u; }
/* Spans of more blocks are never purged (nor in checked mode). */
static bool heap_never_purged(const span_t *s) { return s->count > SPAN_PURGE_MAX_BLOCKS || span_checked_mode; }

/* sparse_ms of a span that became sparse since the last look at it: the
 * clock starts at that look, so that no free reads the clock (a batch of
 * frees of 4 KiB blocks makes a span sparse every eighth free). */
#define SPARSE_NEW 1

/* s just became sparse: mark it for its owner's next look (or the sweep's,
 * for an abandoned span); false when s is of a class that is never purged. */
static bool heap_sparse_mark(span_t *s) {
  if (heap_never_purged(s)) return false;
  s->sparse_ms = SPARSE_NEW;
  return true;
}

/* Has s (whose owner we are) been sparse for the decay time? Starts its
 * clock when it was marked, stops it when s is not sparse any more, and
 * when it is due (true, once). */
static bool heap_sparse_due(span_t *s, uint32_t now) {
  if (!s->sparse_ms) return false;
  if (!heap_sparse(s)) {
    s->sparse_ms = 0;
    return false;
  }
  if (s->sparse_ms == SPARSE_NEW) s->sparse_ms = (now - 1) | 1;   /* odd, not after now */
  if (now - s->sparse_ms < options.decay_ms) return false;
  s->sparse_ms = 0;
  return true;
}

/* Which spans of h heap_purge_sparse purges: those sparse for the decay
 * time (heap_tick), every marked sparse one whatever its age (the thread's
 * footprint grows: heap_relieve), or every one (strata_collect). A span is marked when
 * frees make it sparse and unmarked by its purge, so none is walked twice
 * for the same frees. */
typedef enum { PURGE_DUE, PURGE_MARKED, PURGE_ALL } purge_t;

static void heap_purge_sparse(heap_t *h, purge_t which) {
  uint32_t now = os_now_ms();
  if (which == PURGE_DUE && now - h->sparse_scan_ms < options.decay_ms / 2) return;
  h->sparse_scan_ms = now;
  h->sparse_waiting = h->sparse_walked = 0;
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    for (span_t *s = h->bins[c].spans; s; s = s->next) {
      if (heap_never_purged(s)) break;   /* the whole class */
      h->sparse_walked++;
      bool marked = which == PURGE_MARKED && s->sparse_ms && heap_sparse(s);
      if (heap_sparse_due(s, now) || marked || which == PURGE_ALL) {
        s->sparse_ms = 0;
        span_purge_free_pages(s);
      }
      h->sparse_waiting += s->sparse_ms != 0;
    }
}

/* h took a span of clean pages from the page heap: its resident memory
 * grows. Before it grows further, h gives back the free pages of its
 * sparse spans, whatever their age: a program that fills, frees most of it
 * and fills again with other sizes (the harness's `memory` workload) would
 * otherwise reach its peak before any of them was due. Only while some
 * span is marked (each purge unmarks it), and at most once per eighth of
 * the decay time unless HEAP_RELIEF_SPANS and an eighth of the last walk's
 * length were marked since: a thread that frees and grows at once walks
 * its bins at most once per eight marks, and one that frees many spans'
 * worth and refills at once (faster than the clock) is relieved all the
 * same. */
#define HEAP_RELIEF_SPANS 64

static NOINLINE void heap_relieve(heap_t *h) {
  uint32_t now = os_now_ms();
  if (!h->sparse_waiting) return;
  if (h->sparse_waiting < HEAP_RELIEF_SPANS + h->sparse_walked / 8 &&
      now - h->relieved_ms < options.decay_ms / 8)
    return;
  h->relieved_ms = now;
  heap_purge_sparse(h, PURGE_MARKED);
}

/* Blocks of s came back: an emptied span loses its sparse clock (its pages
 * are the span cache's and the decay's) and goes to the cache, a sparse
 * one without a clock is marked (also after a purge: the blocks freed
 * since may free more pages). */
static inline void heap_span_freed(heap_t *h, span_t *s) {
  if (unlikely(s->used == 0)) {
    s->sparse_ms = 0;
    heap_span_emptied(h, s);
  } else if (unlikely(heap_sparse(s) && !s->sparse_ms)) {
    h->sparse_waiting += heap_sparse_mark(s);
  }
}

/* The most blocks the cache of class c can hold: its bound, plus one span's
 * blocks after a refill (a bound on walks of it). */
static uint32_t heap_cache_max(const heap_t *h, unsigned c) {
  return (uint32_t)h->free_bound[c] + class_info[c].count;
}

/* Spans of class cls queued by remote frees: each is drained, given back if
 * that emptied it, or else brought to the front of its bin (unparked if
 * parked).
 * A span whose blocks all came back from other threads is otherwise seen
 * only when the refills reach it, and newer spans can keep the front for
 * ever: a thread that hands out blocks that others free, and adopts the
 * spans of exited threads, grew without bound. A span that is not (any
 * more) h's may be released once QUEUED is clear: its owner is read first. */
static void heap_take_ready(heap_t *h, unsigned cls) {
  h->ready_wait[cls] = 0;
  span_t *s = atomic_exchange_acq_rel(&h->ready[cls], NULL);
  while (s) {
    span_t *next = s->qnext;
    bool mine = atomic_load_relaxed(&s->owner) == h;
    uintptr_t x = atomic_fetch_and_explicit(&s->xfree, ~(uintptr_t)XF_QUEUED, memory_order_acq_rel);
    if (mine) {
      bin_t *bin = &h->bins[cls];
      if (x & XF_FULL) {
        heap_unpark(bin, s);
      } else if (bin->spans != s) {
        list_remove(&bin->spans, s);
        list_insert_second(&bin->spans, s);
      }
      span_drain_remote(s, h->free[cls], heap_cache_max(h, cls));
      heap_span_freed(h, s);
    }
    s = next;
  }
}

/* A refill takes the queued spans of its class only every
 * HEAP_READY_REFILLS refills of the class while some wait (heap_tick takes
 * them all more often): a span stays queued meanwhile, so the remote frees
 * pile up on it without queueing it again, and the owner drains it in one
 * go, often whole (it then goes to the span cache and comes back as a fresh
 * span). Taken at every refill, or whenever the bin ran out of spans, a
 * producer's spans were drained a few blocks at a time while its consumer
 * freed into them, each drain arming the next queueing: prodcons, 1 pair,
 * 7.8 -> 18 M/s, with 1.2 MiB more resident. */
#define HEAP_READY_REFILLS 8

/* The classes of mask (bit c: class c). */
static void heap_take_ready_of(heap_t *h, uint64_t mask) {
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    if ((mask >> c & 1) && atomic_load_relaxed(&h->ready[c])) heap_take_ready(h, c);
}
#define HEAP_ALL_CLASSES (~(uint64_t)0)

/* Give s the n blocks first..last, linked (with the span's encoding);
 * unparks the span if it was parked. */
static void heap_push_span_list(heap_t *h, span_t *s, block_t *first, block_t *last, uint32_t n) {
  if (unlikely(atomic_load_relaxed(&s->xfree) & XF_FULL)) heap_unpark(&h->bins[s->cls], s);
  block_encode(last, s->local_free, span_secret);
  last->key = span_free_key;
  s->local_free = first;
  s->used -= n;
  heap_span_freed(h, s);
}

/* The owner gives block b of s (checked) back to the span: a free that finds
 * the cache full, a bound lowered, a free in checked mode. */
static void heap_push_span(heap_t *h, span_t *s, block_t *b) {
  heap_push_span_list(h, s, b, b, 1);
}

/* ---- the bounds of the block caches ---------------------------------------
 * A class whose cache overflowed and then ran empty (the thread frees and
 * reallocates more blocks than the bound) doubles its bound at the refill,
 * up to class_info's cache_max, within a budget of HEAP_EXTRA_MAX bytes a
 * heap and HEAP_EXTRA_TOTAL over all heaps: what idle threads' caches may
 * keep past their first bounds, which only the threads themselves can give
 * back (the figures of tcmalloc's thread caches). A thread that frees a
 * burst and goes idle grows nothing. Every HEAP_GC_TICKS slow-path events
 * (heap_tick), the grown bound of each class that had no refill since is
 * halved, the blocks past it going back to their spans; a flush resets
 * every bound. */
#define HEAP_EXTRA_MAX   ((uint32_t)4 * MiB)
#define HEAP_EXTRA_TOTAL ((size_t)32 * MiB)
static _Atomic size_t heap_extra_total;

static bool heap_bound_grow(heap_t *h, unsigned c) {
  uint32_t bound = h->free_bound[c], grow = bound;
  if (bound + grow > class_info[c].cache_max) grow = class_info[c].cache_max - bound;
  uint32_t bytes = grow * class_info[c].size;
  if (grow == 0 || h->free_extra + bytes > HEAP_EXTRA_MAX) return false;
  if (atomic_add_relaxed(&heap_extra_total, bytes) + bytes > HEAP_EXTRA_TOTAL) {
    atomic_sub_relaxed(&heap_extra_total, bytes);
    return false;
  }
  h->free_extra += bytes;
  h->free_bound[c] = (uint16_t)(bound + grow);
  h->room[c] += (int32_t)grow;
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
static void heap_cache_trim(heap_t *h, unsigned c, uint32_t keep) {
  uintptr_t key;
  for (block_t *first; h->free_bound[c] - h->room[c] > (int32_t)keep &&
                       (first = heap_cache_pop(h, c, &key));) {
    span_t *s = span_of(first);
    size_t bytes = (size_t)s->npages * PAGE_SIZE;
    block_t *last = first, *next;
    uint32_t n = 1;
    while ((uintptr_t)(next = h->free[c]) - (uintptr_t)s->start < bytes) {
      h->free[c] = block_decode(next, h->secret);
      last = next;
      n++;
    }
    h->room[c] += (int32_t)n - 1;
    heap_push_span_list(h, s, first, last, n);
  }
}

/* Lower the bound of c to `to` (at least class_info.cache); the blocks past
 * it go back to their spans. */
static void heap_bound_lower(heap_t *h, unsigned c, uint32_t to) {
  uint32_t less = h->free_bound[c] - to, bytes = less * class_info[c].size;
  h->free_bound[c] = (uint16_t)to;
  h->room[c] -= (int32_t)less;
  h->free_extra -= bytes;
  atomic_sub_relaxed(&heap_extra_total, bytes);
  heap_cache_trim(h, c, to);
}

static void heap_bounds_gc(heap_t *h) {
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    uint32_t base = class_info[c].cache, half = h->free_bound[c] / 2u;
    if (h->free_bound[c] > base && !(h->refilled >> c & 1))
      heap_bound_lower(h, c, half > base ? half : base);
  }
}

/* At a refill of c (its cache is empty). */
static void heap_bound_adapt(heap_t *h, unsigned c) {
  uint64_t bit = (uint64_t)1 << c;
  h->refilled |= bit;
  if (!(h->overflowed & bit)) return;
  h->overflowed &= ~bit;
  heap_bound_grow(h, c);
}

/* ---- housekeeping ----------------------------------------------------------
 * Every HEAP_GC_TICKS slow-path events of a heap (refills of any class and
 * adoptions of abandoned spans), the classes that had no refill since have
 * their grown bounds halved and their queued spans taken. A class whose
 * cache never runs empty never refills: a thread that hands out small
 * blocks that other threads free, and refills its cache by freeing the
 * blocks of exited threads (test_handoff), kept every span of those classes
 * queued, empty, for ever (180 MB active for windows of 4 MB after 1200
 * rounds, growing). */
#define HEAP_GC_TICKS 64

static void heap_tick(heap_t *h) {
  if (++h->ticks % HEAP_GC_TICKS) return;
  if (h->free_extra) heap_bounds_gc(h);
  if (h->sparse_waiting) heap_purge_sparse(h, PURGE_DUE);
  heap_take_ready_of(h, ~h->refilled);
  h->refilled = 0;
}

void heap_cache_full(heap_t *h, span_t *s, block_t *b) {
  h->room[s->cls]++;
  h->overflowed |= (uint64_t)1 << s->cls;
  heap_push_span(h, s, b);
}

void heap_bad_cached_block(const block_t *b) {
  if (((b->key ^ span_free_key) & ~(uintptr_t)KEY_FRESH) == KEY_SUSPECT)
    fatal(CALL_FREE, b, "double free (the second from another thread)");
  fatal("malloc", b, "free block overwritten (use after free, or corrupted free list)");
}

/* Give every block of the cache of class c back to its span, and reset its
 * bound. */
static void heap_flush(heap_t *h, unsigned c) {
  heap_cache_trim(h, c, 0);
  if (h->free[c]) heap_bad_cached_block(h->free[c]);
  heap_bound_lower(h, c, class_info[c].cache);
}

void heap_check_double_free(heap_t *h, span_t *s, block_t *b, const char *call) {
  /* Only the owner detaches remote frees, so it may walk them too. */
  span_check_not_on(xf_list(atomic_load_acquire(&s->xfree)), s->count, b, call);
  span_check_not_on(s->local_free, s->count, b, call);
  span_check_not_on(h->free[s->cls], heap_cache_max(h, s->cls), b, call);
}

/* ---- abandoned spans ----------------------------------------------------- */
/* Under heap_abandoned_lock: take s off the abandoned list. */
static void heap_unabandon(span_t *s) {
  list_remove(&heap_abandoned[s->cls], s);
  s->abandoned = false;
}

/* An abandoned span of class cls for h's refill, not yet on a bin list. */
static span_t *heap_adopt(heap_t *h, unsigned cls) {
  lock_acquire(&heap_abandoned_lock);
  span_t *s = heap_abandoned[cls];
  if (s) heap_unabandon(s);
  lock_release(&heap_abandoned_lock);
  if (s) {
    atomic_store_release(&s->owner, h);
    h->sparse_waiting += s->sparse_ms != 0;
  }
  return s;
}

/* A free into an abandoned span: h adopts it (onto its bin), so this and
 * the next frees into it are the owner's. A thread that takes over the
 * blocks of one that exited (larson) otherwise pushes every free remotely,
 * and refills from spans that give one block or two. False when the span
 * is not (or no longer) abandoned. */
static bool heap_adopt_span(heap_t *h, span_t *s) {
  lock_acquire(&heap_abandoned_lock);
  bool ok = s->abandoned;
  if (ok) heap_unabandon(s);
  lock_release(&heap_abandoned_lock);
  if (!ok) return false;
  atomic_store_release(&s->owner, h);
  list_insert_second(&h->bins[s->cls].spans, s);
  h->sparse_waiting += s->sparse_ms != 0;
  heap_tick(h);
  return true;
}

static void heap_abandon(span_t *s) {
  atomic_fetch_and_explicit(&s->xfree, ~(uintptr_t)XF_FULL, memory_order_relaxed);
  span_drain_remote(s, NULL, 0);
  if (span_releasable(s)) {
    pageheap_free_span(s);
    return;
  }
  /* A sparse span's free pages are for the purge thread's sweep: wake it. */
  if (heap_sparse(s) && (s->sparse_ms || heap_sparse_mark(s)))
    decay_note((size_t)(s->count - s->used) * s->block_size);
  atomic_store_release(&s->owner, NULL);
  lock_acquire(&heap_abandoned_lock);
  list_push(&heap_abandoned[s->cls], s);
  s->abandoned = true;
  lock_release(&heap_abandoned_lock);
}

/* Give every abandoned span that has become empty back to the page heap.
 * First, the ready lists of pooled heaps: a remote free that raced with its
 * owner's exit may have queued a span there (pooled heaps own no span, so
 * this only clears QUEUED, which kept the span from being released). */
bool heap_sweep_abandoned(void) {
  bool waiting = false;
  lock_acquire(&heap_pool_lock);
  for (heap_t *h = heap_pool; h; h = h->next_free)
    heap_take_ready_of(h, HEAP_ALL_CLASSES);
  lock_release(&heap_pool_lock);
  uint32_t now = os_now_ms();
  lock_acquire(&heap_abandoned_lock);
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    for (span_t *s = heap_abandoned[c], *next; s; s = next) {
      next = s->next;
      uint32_t drained = span_drain_remote(s, NULL, 0);   /* the lock makes us its owner */
      if (span_releasable(s)) {
        heap_unabandon(s);
        pageheap_free_span(s);
        continue;
      }
      if (drained && heap_sparse(s) && !s->sparse_ms) heap_sparse_mark(s);
      if (heap_sparse_due(s, now)) span_purge_free_pages(s);   /* the exited owner's last blocks */
      waiting |= s->sparse_ms != 0;
    }
  lock_release(&heap_abandoned_lock);
  return waiting;
}

/* ---- refill ---------------------------------------------------------------- */
/* Fill the empty cache of cls from the bin's spans (a new one if need be,
 * when `grow`); false when out of memory. */
static bool heap_refill(heap_t *h, unsigned cls, bool grow) {
  heap_tick(h);
  heap_bound_adapt(h, cls);
  if (atomic_load_relaxed(&h->ready[cls]) && ++h->ready_wait[cls] >= HEAP_READY_REFILLS)
    heap_take_ready(h, cls);
  bin_t *bin = &h->bins[cls];
  for (;;) {
    span_t *s = bin->spans;
    if (!s) {
      s = heap_cache_take(h, cls);
      if (!s) s = heap_adopt(h, cls);
      if (!s && !grow) return false;
      if (!s) {
        uint32_t clean = atomic_load_relaxed(&pageheap_clean_runs);
        s = pageheap_alloc_span(class_info[cls].pages, SPAN_SMALL);
        if (!s) return false;
        span_init_small(s, cls, h);
        if (atomic_load_relaxed(&pageheap_clean_runs) != clean) heap_relieve(h);
      }
      list_push(&bin->spans, s);
    }
    uint32_t n;
    block_t *list = span_take_free(s, &n);
    if (!heap_sparse(s)) s->sparse_ms = 0;      /* in use again */
    if (list) {
      h->free[cls] = list;
      h->room[cls] -= (int32_t)n;
      return true;
    }
    heap_park(bin, s);
  }
}

/* ---- heaps for threads ----------------------------------------------------- */
static void heap_room_init(heap_t *h) {
  for (unsigned c = 0; c < CLASS_COUNT; c++) h->room[c] = h->free_bound[c] = class_info[c].cache;
}

static heap_t *heap_new(void) {
  lock_acquire(&heap_pool_lock);
  heap_t *h = heap_pool;
  if (h) {
    heap_pool = h->next_free;
  } else {
    static heap_t *chunk;
    static size_t left;
    if (!left) {
      size_t bytes = 64 * KiB;
      chunk = os_map_aligned(bytes, OS_PAGE, 0);
      left = chunk ? bytes / sizeof(heap_t) : 0;
    }
    if (left) {
      h = chunk++;
      left--;
      lock_reinit(&h->cache_lock);
      heap_room_init(h);
      h->secret = span_secret;
      h->free_key = span_free_key;
      h->next_all = heap_all;
      atomic_store_release(&heap_all, h);
    }
  }
  lock_release(&heap_pool_lock);
  return h;
}

static heap_t *heap_for_thread(void) {
  if (heap_thread_state == THREAD_DEAD) return NULL;
  heap_t *h = heap_new();
  if (!h) return NULL;
  heap_thread_state = THREAD_LIVE;
  heap_tls = h;
  pthread_setspecific(heap_key, h);
  heap_take_ready_of(h, HEAP_ALL_CLASSES);  /* stale queues */
  decay_threads_changed(atomic_fetch_add(&heap_live, 1) + 1);
  return h;
}

/* A pop from h's cache of cls, refilled first if empty; aborts on a bad
 * cached block. */
static void *heap_pop_or_refill(heap_t *h, unsigned cls, bool *fresh, bool grow) {
  void *p = heap_malloc_small(h, cls, fresh);
  if (!p && !h->free[cls] && heap_refill(h, cls, grow)) p = heap_malloc_small(h, cls, fresh);
  if (!p && h->free[cls]) heap_bad_cached_block(h->free[cls]);
  return p;
}

/* Sizes above CLASS_FAST_MAX come here without trying the bin first. */
void *heap_alloc_class(unsigned cls, bool *fresh) {
  heap_t *h = heap_tls;
  if (unlikely(h == &heap_empty)) {
    h = heap_for_thread();
    if (!h) {                       /* thread torn down, or no memory */
      lock_acquire(&heap_orphan_lock);
      void *p = heap_pop_or_refill(&heap_orphan, cls, fresh, true);
      lock_release(&heap_orphan_lock);
      return p;
    }
  }
  return heap_pop_or_refill(h, cls, fresh, true);
}

void *heap_alloc_at_hand(unsigned cls, size_t align, unsigned *got, bool *fresh) {
  heap_t *h = heap_tls;
  if (h == &heap_empty) return NULL;
  for (unsigned c = cls; c < CLASS_COUNT; c++) {
    if (class_info[c].size & (align - 1)) continue;   /* its blocks are not aligned so */
    void *p = heap_pop_or_refill(h, c, fresh, false);
    if (p) {
      *got = c;
      return p;
    }
  }
  return NULL;
}

/* ---- frees that are not the owner's fast path ------------------------------ */
span_t *heap_span_checked(const void *p, const char *call) {
  span_t *s = span_of(p);
  CHECK(s->kind == SPAN_SMALL && span_is_block_start(s, p), call, p, MSG_NOT_BLOCK);
  return s;
}

void heap_check_owned_not_free(heap_t *h, span_t *s, block_t *b, const char *call) {
  if (unlikely(s->purged) && span_block_purged(s, b)) fatal(call, b, "double free");
  if (block_looks_free(b, h->free_key)) heap_check_double_free(h, s, b, call);
}

/* The owner's free, checked: into its cache (heap_cache_push), or to the
 * span in checked mode, where the bins stay empty. */
static void heap_free_owned(heap_t *h, span_t *s, block_t *b, const char *call) {
  unsigned c = s->cls;
  heap_check_owned_not_free(h, s, b, call);
  STAT_INC(h->nfree[c]);
  if (span_checked_mode) heap_push_span(h, s, b);
  else heap_cache_push(h, s, c, b);
}

/* A remote free set QUEUED on s: queue s on its owner's ready list of its
 * class (QUEUED keeps s alive until the owner clears it). */
static NOINLINE void heap_queue_span(span_t *s) {
  heap_t *owner = atomic_load_acquire(&s->owner);   /* may have changed */
  if (!owner) {                     /* abandoned: adoption drains it anyway */
    atomic_fetch_and_explicit(&s->xfree, ~(uintptr_t)XF_QUEUED, memory_order_release);
    return;
  }
  span_t *_Atomic *ready = &owner->ready[s->cls];
  span_t *head = atomic_load_relaxed(ready);
  do s->qnext = head;
  while (!atomic_cas_weak_release(ready, &head, s));
}

/* The free of b (checked) by h, which does not own s. */
static inline void heap_free_remote(heap_t *h, span_t *s, block_t *b) {
  if (likely(h != &heap_empty)) STAT_INC(h->nfree[s->cls]);
  else atomic_add_relaxed(&heap_nfree_homeless[s->cls], 1);
  if (unlikely(span_push_remote(s, b))) heap_queue_span(s);
}

/* The free of b (checked) into h's own span, or into an abandoned one,
 * which h adopts (unless in checked mode). */
static NOINLINE void heap_free_local(heap_t *h, heap_t *owner, span_t *s, block_t *b, const char *call) {
  if (!owner && !span_checked_mode) {
    if (h == &heap_empty) h = heap_for_thread();
    if (h && heap_adopt_span(h, s)) owner = h;
    if (!h) h = &heap_empty;
  }
  if (owner == h) heap_free_owned(h, s, b, call);
  else heap_free_remote(h, s, b);   /* checked mode, or adoption lost a race */
}

/* Kept lean for the remote free, the common case here: the rare paths are
 * out of line, so this one saves no register. */
bool heap_free_small_slow(void *p, const char *call) {
  span_t *s = span_of(p);
  if (unlikely(s->kind == SPAN_LARGE)) return false;
  heap_span_checked(p, call);
  heap_t *owner = atomic_load_acquire(&s->owner), *h = heap_tls;
  if (unlikely(owner == h || !owner)) heap_free_local(h, owner, s, p, call);
  else heap_free_remote(h, s, p);
  return true;
}

/* ---- thread exit, collect, fork -------------------------------------------- */
static void heap_flush_bins(heap_t *h) {
  for (unsigned c = 0; c < CLASS_COUNT; c++) heap_flush(h, c);
  h->overflowed = h->refilled = 0;
}

void heap_thread_exit(heap_t *h) {
  heap_flush_bins(h);
  heap_take_ready_of(h, HEAP_ALL_CLASSES);  /* may give spans to the cache */
  bool younger = false;
  heap_cache_decay(h, 0, 0, &younger);    /* the whole cache */
  h->cache_shift = 0;
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    bin_t *bin = &h->bins[c];
    span_t *lists[2] = { bin->spans, bin->full };
    for (int l = 0; l < 2; l++)
      for (span_t *s = lists[l], *next; s; s = next) {
        next = s->next;
        heap_abandon(s);
      }
    bin->spans = bin->full = NULL;
  }
  /* The next thread's heap starts with no span and clocks of its own. */
  h->sparse_waiting = h->sparse_walked = h->sparse_scan_ms = h->relieved_ms = 0;
  lock_acquire(&heap_pool_lock);
  h->next_free = heap_pool;
  heap_pool = h;
  lock_release(&heap_pool_lock);
}

static void heap_key_destructor(void *arg) {
  heap_thread_state = THREAD_DEAD;
  heap_tls = &heap_empty;
  heap_thread_exit(arg);
  decay_threads_changed(atomic_fetch_sub(&heap_live, 1) - 1);
}

unsigned heap_threads(void) { return atomic_load(&heap_live); }

bool heap_init(void) {
  heap_room_init(&heap_orphan);
  heap_orphan.secret = span_secret;
  heap_orphan.free_key = span_free_key;
  atomic_store_release(&heap_all, &heap_orphan);
  return pthread_key_create(&heap_key, heap_key_destructor) == 0;
}

void heap_collect(void) {
  heap_t *h = heap_tls;
  if (h != &heap_empty) {
    heap_flush_bins(h);
    heap_take_ready_of(h, HEAP_ALL_CLASSES);
    for (unsigned c = 0; c < CLASS_COUNT; c++) {
      bin_t *bin = &h->bins[c];
      for (span_t *s = bin->full, *next; s; s = next) {
        next = s->next;
        if (span_drain_remote(s, NULL, 0) || s->local_free) heap_unpark(bin, s);
      }
      for (span_t *s = bin->spans, *next; s; s = next) {
        next = s->next;
        span_drain_remote(s, NULL, 0);
        if (span_releasable(s)) {
          list_remove(&bin->spans, s);
          pageheap_free_span(s);
        }
      }
    }
    heap_purge_sparse(h, PURGE_ALL);    /* the free pages of spans in use */
  }
  bool younger = false;
  heap_decay(0, 0, &younger);             /* every heap's cache */
  heap_sweep_abandoned();
}

void heap_stats(uint64_t nmalloc[CLASS_COUNT], uint64_t nfree[CLASS_COUNT]) {
  /* Frees first: a free counted implies its malloc is counted too. */
  for (unsigned c = 0; c < CLASS_COUNT; c++) nfree[c] = atomic_load_relaxed(&heap_nfree_homeless[c]);
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all)
    for (unsigned c = 0; c < CLASS_COUNT; c++) nfree[c] += STAT_READ(h->nfree[c]);
  for (unsigned c = 0; c < CLASS_COUNT; c++) nmalloc[c] = 0;
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all)
    for (unsigned c = 0; c < CLASS_COUNT; c++) nmalloc[c] += STAT_READ(h->nmalloc[c]);
}

/* Every heap's cache lock too (the purge thread may hold one), in the
 * order of heap_all, after the pool lock (no heap is added meanwhile). */
void heap_fork_prepare(void) {
  lock_acquire(&heap_orphan_lock);
  lock_acquire(&heap_pool_lock);
  lock_acquire(&heap_abandoned_lock);
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all) lock_acquire(&h->cache_lock);
}

void heap_fork_parent(void) {
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all) lock_release(&h->cache_lock);
  lock_release(&heap_abandoned_lock);
  lock_release(&heap_pool_lock);
  lock_release(&heap_orphan_lock);
}

void heap_fork_child(void) {
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all) lock_reinit(&h->cache_lock);
  /* Only this thread's caches can still give their growth back. */
  atomic_store_relaxed(&heap_extra_total, heap_tls->free_extra);
  lock_reinit(&heap_abandoned_lock);
  lock_reinit(&heap_pool_lock);
  lock_reinit(&heap_orphan_lock);
  atomic_store_relaxed(&heap_live, heap_tls != &heap_empty);
  /* The other threads are gone in the child. Their heaps are left as they
   * are: a thread may have been halfway through a lock-free list update when
   * fork copied its heap, so walking them could crash. What they cached stays
   * unused in the child (freeing their blocks works: those are remote frees). */
}
