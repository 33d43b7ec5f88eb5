/* heap.c - thread heaps: a heap per thread, refills, the slow frees, thread
 * exit, and the heap tier's operations (heap.h; structures in
 * heap_types.h; the parts in bin.c, bcache.c, spare.c, sparse.c, ready.c
 * and abandon.c).
 *
 * Locks (lock.h): the orphan lock is held across the orphan heap's refills
 * (which take the abandoned, spare and page-heap locks); the pool lock is
 * taken alone.
 */
#include "heap.h"
#include "abandon.h"
#include "backlog.h"
#include "bin.h"
#include "large.h"
#include "os.h"
#include "prof.h"
#include "ready.h"
#include "segmap.h"
#include "spare.h"
#include "sparse.h"

__thread heap_t *heap_tls __attribute__((tls_model("initial-exec"))) = &heap_empty;

/* A thread's heap: none yet, live, or torn down by the thread-exit key's
 * destructor: the thread then allocates from the orphan heap under a lock,
 * and its frees are remote frees, valid from any thread. */
enum { HEAP_THREAD_NEW = 0, HEAP_THREAD_LIVE, HEAP_THREAD_DEAD };
static __thread uint8_t heap_thread_state __attribute__((tls_model("initial-exec")));

static pthread_key_t heap_key;
static lock_t heap_orphan_lock = LOCK_INIT(RANK_ORPHAN);
static heap_t heap_orphan;
static lock_t heap_pool_lock = LOCK_INIT(RANK_POOL);
static heap_t *heap_pool;                  /* free heaps (next_free) */
static heap_t *_Atomic heap_all;           /* every heap made (next_all) */
/* Frees by threads that have no heap (yet, or any more), for statistics. */
static _Atomic uint64_t heap_nfree_homeless[CLASS_COUNT];

/* ---- the tick --------------------------------------------------------------
 * Every HEAP_GC_TICKS slow-path events of a heap (refills of any class and
 * adoptions of abandoned spans), the classes that had no refill since have
 * their grown bounds halved and their queued spans taken, and the sparse
 * spans that are due are purged. A class whose cache never runs empty never
 * refills: a thread that hands out small blocks that other threads free,
 * and refills its cache by freeing the blocks of exited threads, would keep
 * every span of those classes queued, empty, for ever. */
#define HEAP_GC_TICKS 64

static void heap_tick(heap_t *h) {
  if (++h->ticks % HEAP_GC_TICKS) return;
  bcache_gc(h);
  if (h->sparse_waiting) sparse_purge(h, SPARSE_DUE);
  ready_take(h, ~h->refilled);
  h->refilled = 0;
}

/* ---- refill ------------------------------------------------------------------ */
/* Fill the empty cache of cls from the bin's spans (a new one if need be,
 * when `grow`); false when out of memory. */
static bool heap_refill(heap_t *h, unsigned cls, bool grow) {
  ASSERT(h->free[cls] == NULL && (h != &heap_orphan || lock_held(RANK_ORPHAN)));
  heap_tick(h);
  bcache_refilled(h, cls);
  ready_at_refill(h, cls);
  bin_t *bin = &h->bins[cls];
  for (;;) {
    span_t *s = bin->spans;
    if (!s) {
      s = spare_take(h, cls);
      if (!s) s = abandon_adopt(h, cls);
      if (!s && !grow) return false;
      if (!s) {
        uint32_t clean = atomic_load_relaxed(&pageheap_clean_runs);
        s = pageheap_alloc_span(class_info[cls].pages, SPAN_SMALL);
        if (!s) return false;
        span_init_small(s, cls, h);
        if (atomic_load_relaxed(&pageheap_clean_runs) != clean) sparse_relieve(h);
      }
      bin_push(bin, s);
    }
    ASSERT(atomic_load_relaxed(&s->owner) == h && s->cls == cls);
    uint32_t n;
    block_t *list = span_take_free(s, &n);
    if (!sparse_is(s)) s->sparse_ms = 0;       /* in use again */
    if (list) {
      h->free[cls] = list;
      bcache_room_add(h, cls, -(intptr_t)n);
      /* What the refill touched; the whole heap is walked at exit, at
       * collect and by the decay passes (a walk per refill is quadratic). */
      EXPENSIVE_ASSERT(span_valid(s) && bcache_valid(h, cls));
      return true;
    }
    bin_park(bin, s);
  }
}

/* ---- heaps for threads --------------------------------------------------------- */
/* A zeroed heap made ready and listed among all heaps (for statistics and
 * fork); the orphan heap first, at init, then new heaps under the pool
 * lock. */
static void heap_setup(heap_t *h) {
  h->spare_lock = (lock_t)LOCK_INIT(RANK_SPARE);
  bcache_init(h);
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    h->left[c] = prof_interval(class_info[c].size);
    h->nmalloc_at_zero[c] = (uint64_t)h->left[c];
  }
  h->secret = span_secret;
  h->free_key = span_free_key;
  h->next_all = atomic_load_relaxed(&heap_all);
  atomic_store_release(&heap_all, h);
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
      heap_setup(h);
    }
  }
  lock_release(&heap_pool_lock);
  return h;
}

static heap_t *heap_for_thread(void) {
  ASSERT(heap_tls == &heap_empty);
  if (heap_thread_state == HEAP_THREAD_DEAD) return NULL;
  heap_t *h = heap_new();
  if (!h) return NULL;
  heap_thread_state = HEAP_THREAD_LIVE;
  heap_tls = h;
  pthread_setspecific(heap_key, h);
  ready_take(h, READY_ALL);                 /* stale queues */
  backlog_thread(+1);
  return h;
}

/* A pop from h's cache of cls, refilled first if empty; aborts on a bad
 * cached block. */
static void *heap_pop_or_refill(heap_t *h, unsigned cls, bool *fresh, bool grow) {
  void *p = heap_malloc_small(h, cls, fresh);
  if (!p && !h->free[cls] && heap_refill(h, cls, grow)) p = heap_malloc_small(h, cls, fresh);
  if (!p && h->free[cls] && h->left[cls] >= 0) bcache_bad_block(h->free[cls]);
  return p;
}

/* Allocations of class c handed out by h: those by the time the count
 * down reaches 0, less the pops still to come (a pop that left its block
 * took it below 0). */
static uint64_t heap_nmalloc(const heap_t *h, unsigned c) {
  intptr_t left = STAT_READ(h->left[c]);
  return STAT_READ(h->nmalloc_at_zero[c]) - (uint64_t)(left < 0 ? 0 : left);
}

/* Blocks of class c freed by h: the slow paths' count, and the pushes on
 * its cache, from room (heap_types.h invariants). */
static uint64_t heap_nfree(const heap_t *h, unsigned c) {
  uint64_t n = STAT_READ(h->nfree[c]);
  if (HEAP_PUSH_COUNTED) return n;
  return n + (uint64_t)(STAT_READ(h->room_base[c]) + (intptr_t)heap_nmalloc(h, c) -
                        __atomic_load_n(&h->room[c], __ATOMIC_RELAXED));
}

void heap_sample_take(unsigned cls) {
  heap_t *h = heap_tls;
  ASSERT(h->left[cls] < 0);
  intptr_t next = prof_interval(class_info[cls].size);
  STAT_SET(h->nmalloc_at_zero[cls], heap_nmalloc(h, cls) + (uint64_t)next);
  STAT_SET(h->left[cls], next);
}

/* malloc's miss (api.c's cache_refill) and the general path come here: a
 * pop of the cache, refilled first if it is empty. */
void *heap_alloc_class(unsigned cls, bool *fresh) {
  ASSERT(cls < CLASS_COUNT);
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
  ASSERT(is_pow2(align) && align <= PAGE_SIZE);
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

/* b carries the free key: abort if it is on one of the owner's lists (a
 * double free); otherwise it is a live block holding a copy of free bytes.
 * Only the owner detaches remote frees, so it may walk them too. */
static void heap_check_double_free(heap_t *h, span_t *s, block_t *b, const char *call) {
  span_check_not_on(xf_list(atomic_load_acquire(&s->xfree)), s->count, b, call);
  span_check_not_on(s->local_free, s->count, b, call);
  span_check_not_on(h->free[s->cls], bcache_max(h, s->cls), b, call);
}

void heap_check_owned_not_free(heap_t *h, span_t *s, block_t *b, const char *call) {
  ASSERT(atomic_load_relaxed(&s->owner) == h);
  if (unlikely(s->purged) && span_block_purged(s, b)) fatal(call, b, "double free");
  if (block_looks_free(b, h->free_key)) heap_check_double_free(h, s, b, call);
}

/* The owner's free, checked: into its cache (bcache_push), or to the span
 * in checked mode, where the caches stay empty. */
static void heap_free_owned(heap_t *h, span_t *s, block_t *b, const char *call) {
  ASSERT(atomic_load_relaxed(&s->owner) == h && span_is_block_start(s, b));
  unsigned c = s->cls;
  heap_check_owned_not_free(h, s, b, call);
  if (span_checked_mode || HEAP_PUSH_COUNTED) STAT_INC(h->nfree[c]);
  if (span_checked_mode) bin_give(h, s, b);
  else bcache_push(h, s, c, b);
}

/* The free of b (checked) by h, which does not own s. */
static inline void heap_free_remote(heap_t *h, span_t *s, block_t *b) {
  ASSERT(atomic_load_relaxed(&s->owner) != h || span_checked_mode);
  if (likely(h != &heap_empty)) STAT_INC(h->nfree[s->cls]);
  else atomic_add_relaxed(&heap_nfree_homeless[s->cls], 1);
  if (unlikely(span_push_remote(s, b))) ready_queue(s);
}

/* The free of b (checked) into h's own span, or into an abandoned one.
 * h adopts an abandoned span when it has spans of the class itself
 * (unless in checked mode): a thread that takes over an exited one's
 * blocks (larson) then frees into it as the owner. A thread that only
 * frees the class (a consumer, or main freeing what exited threads left)
 * would keep the span for allocations it never makes: it frees into the
 * span in place, and the span stays where any thread's refill adopts it,
 * or goes back to the page heap with its last block. */
static NOINLINE void heap_free_local(heap_t *h, heap_t *owner, span_t *s, block_t *b, const char *call) {
  if (!owner && !span_checked_mode) {
    /* b keeps s a span of its class until it is freed: read the class
     * first, as abandon_free may give s back with b. */
    unsigned cls = s->cls;
    if (!h->bins[cls].spans && !h->bins[cls].full && abandon_free(s, b, call)) {
      if (likely(h != &heap_empty)) STAT_INC(h->nfree[cls]);
      else atomic_add_relaxed(&heap_nfree_homeless[cls], 1);
      return;
    }
    if (h == &heap_empty) h = heap_for_thread();
    if (h && abandon_adopt_span(h, s)) {
      owner = h;
      heap_tick(h);
    }
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

/* ---- thread exit ---------------------------------------------------------------- */
static void heap_flush(heap_t *h) {
  for (unsigned c = 0; c < CLASS_COUNT; c++) bcache_flush(h, c);
  h->overflowed = h->refilled = 0;
}

/* Hand every span back (empty ones to the page heap, the rest to the
 * abandoned lists) and put the heap back in the pool. */
static void heap_thread_exit(heap_t *h) {
  ASSERT(h != &heap_empty && h != &heap_orphan && heap_tls != h);
  heap_flush(h);
  ready_take(h, READY_ALL);                 /* may give spans to the spares */
  spare_release(h);
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    bin_t *bin = &h->bins[c];
    span_t *lists[2] = { bin->spans, bin->full };
    for (int l = 0; l < 2; l++)
      for (span_t *s = lists[l], *next; s; s = next) {
        next = s->link.next;
        abandon_span(s);
      }
    bin->spans = bin->full = NULL;
  }
  /* The next thread's heap starts with no span and clocks of its own. */
  h->sparse_waiting = h->sparse_walked = h->sparse_scan_ms = h->relieved_ms = 0;
  EXPENSIVE_ASSERT(heap_valid(h));
  lock_acquire(&heap_pool_lock);
  h->next_free = heap_pool;
  heap_pool = h;
  lock_release(&heap_pool_lock);
}

/* The large block the calling thread keeps for its next sample (prof.h)
 * goes back: at thread exit and at trim. */
static void heap_stash_release(void) {
  void *stashed = prof_stash_drop();
  if (stashed) large_free(stashed, CALL_FREE);
}

static void heap_key_destructor(void *arg) {
  heap_thread_state = HEAP_THREAD_DEAD;
  heap_tls = &heap_empty;
  heap_stash_release();
  heap_thread_exit(arg);
  backlog_thread(-1);
}

bool heap_init(void) {
  heap_setup(&heap_orphan);
  /* The orphan heap takes no samples: its threads' heap is heap_empty,
   * where none is ever pending. */
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    heap_orphan.left[c] = INTPTR_MAX / 2;
    heap_orphan.nmalloc_at_zero[c] = INTPTR_MAX / 2;
  }
  return pthread_key_create(&heap_key, heap_key_destructor) == 0;
}

/* ---- the tier ------------------------------------------------------------------- */
/* The spare spans of every heap, and the spans queued on pooled heaps (a
 * remote free that raced with its owner's exit may have queued a span
 * there: pooled heaps own no span, so taking them only clears QUEUED, which
 * kept the span from being released), then the abandoned spans. */
static void heap_decay(uint32_t now, uint32_t age, bool *younger) {
  lock_acquire(&heap_pool_lock);
  for (heap_t *h = heap_pool; h; h = h->next_free) ready_take(h, READY_ALL);
  lock_release(&heap_pool_lock);
  if (abandon_sweep(now, age)) *younger = true;
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all) spare_decay(h, now, age, younger);
}

/* The calling thread's caches, the block it keeps for its next sample, its
 * spans' free pages and its empty spans, then what every heap keeps spare
 * and what exited threads left. */
static bool heap_trim(void) {
  heap_t *h = heap_tls;
  heap_stash_release();
  if (h != &heap_empty) {
    heap_flush(h);
    ready_take(h, READY_ALL);
    for (unsigned c = 0; c < CLASS_COUNT; c++) {
      bin_t *bin = &h->bins[c];
      for (span_t *s = bin->full, *next; s; s = next) {
        next = s->link.next;
        if (span_drain_remote(s, NULL, 0) || s->local_free) bin_unpark(bin, s);
      }
      for (span_t *s = bin->spans, *next; s; s = next) {
        next = s->link.next;
        span_drain_remote(s, NULL, 0);
        if (span_releasable(s)) {
          LIST_REMOVE(&bin->spans, s, link);
          pageheap_free_span(s);
        }
      }
    }
    sparse_purge(h, SPARSE_ALL);            /* the free pages of spans in use */
    EXPENSIVE_ASSERT(heap_valid(h));
  }
  bool younger = false;
  heap_decay(os_now_ms(), 0, &younger);
  return false;                             /* the page heap gives back */
}

void heap_class_stats(uint64_t nmalloc[CLASS_COUNT], uint64_t nfree[CLASS_COUNT]) {
  /* Frees first: a free counted implies its malloc is counted too. */
  for (unsigned c = 0; c < CLASS_COUNT; c++) nfree[c] = atomic_load_relaxed(&heap_nfree_homeless[c]);
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all)
    for (unsigned c = 0; c < CLASS_COUNT; c++) nfree[c] += heap_nfree(h, c);
  for (unsigned c = 0; c < CLASS_COUNT; c++) nmalloc[c] = 0;
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all)
    for (unsigned c = 0; c < CLASS_COUNT; c++) nmalloc[c] += heap_nmalloc(h, c);
}

static void heap_stats(tier_stats_t *st) {
  uint64_t nmalloc[CLASS_COUNT], nfree[CLASS_COUNT];
  heap_class_stats(nmalloc, nfree);
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    st->nmalloc += nmalloc[c];
    st->nfree += nfree[c];
    if (nmalloc[c] > nfree[c]) st->allocated += (nmalloc[c] - nfree[c]) * class_info[c].size;
  }
}

/* Every heap's spare lock too (the purge thread may hold one), in the order
 * of heap_all, after the tier's locks (no heap is added meanwhile). */
static void heap_fork_prepare(void) {
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all) lock_acquire_fork(&h->spare_lock);
}

static void heap_fork_parent(void) {
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all) lock_release_fork(&h->spare_lock);
}

/* The other threads are gone in the child. Their heaps are left as they
 * are: a thread may have been halfway through a lock-free list update when
 * fork copied its heap, so walking them could crash. What they cached stays
 * unused in the child (freeing their blocks works: those are remote frees). */
static void heap_fork_child(void) {
  for (heap_t *h = atomic_load_acquire(&heap_all); h; h = h->next_all) lock_reinit(&h->spare_lock);
  bcache_fork_child(heap_tls);
  backlog_threads_reset(heap_tls != &heap_empty);
}

static bool heap_tier_valid(void) { return heap_tls == &heap_empty || heap_valid(heap_tls); }

const tier_t heap_tier = {
  .name = "heap",
  .decay = heap_decay,
  .trim = heap_trim,
  .locks = { &heap_orphan_lock, &heap_pool_lock, &abandoned_lock },
  .fork_prepare = heap_fork_prepare,
  .fork_parent = heap_fork_parent,
  .fork_child = heap_fork_child,
  .stats = heap_stats,
  .valid = heap_tier_valid,
};

/* ---- validity --------------------------------------------------------------------- */
bool heap_valid(heap_t *h) {
  uint32_t extra = 0;
  for (unsigned c = 0; c < CLASS_COUNT; c++) {
    if (!bcache_valid(h, c)) return false;
    extra += (uint32_t)(h->free_bound[c] - class_info[c].cache) * class_info[c].size;
    /* the bin: spans of class c that h owns; parked ones tagged */
    for (int l = 0; l < 2; l++)
      for (span_t *s = l ? h->bins[c].full : h->bins[c].spans; s; s = s->link.next)
        if (s->kind != SPAN_SMALL || s->cls != c || atomic_load_relaxed(&s->owner) != h || s->abandoned ||
            !(atomic_load_relaxed(&s->xfree) & XF_FULL) != !l || !span_valid(s))
          return false;
  }
  if (extra != h->free_extra) return false;
  uint32_t pages = 0;
  lock_acquire(&h->spare_lock);
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    for (span_t *s = h->spare[c]; s; s = s->link.next) {
      pages += s->npages;
      if (s->cls != c || s->used != 0 || atomic_load_relaxed(&s->owner) != h) pages = UINT32_MAX / 2;
    }
  bool spare_ok = pages == h->spare_pages;
  lock_release(&h->spare_lock);
  return spare_ok;
}
