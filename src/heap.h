/* heap.h - the per-thread heap: one bin per size class.
 *
 * Allocation code overview:
 *   strata_malloc -> heap_malloc_small (inline: pop heap.free[c])
 *                 -> heap_alloc_class -> heap_refill -> span_take_free
 *                    -> adopt an abandoned span -> pageheap_alloc_span
 *   strata_free   -> heap_free_small (inline: the owner pushes on heap.free[c],
 *                    or on the span when that cache is full)
 *                 -> heap_free_small_slow (an abandoned span: adopt it;
 *                    another thread's span: remote CAS push; checks)
 *
 * heap.free[c] is the thread's cache of free blocks of class c: blocks of any
 * span of bins[c] (counted as used by their spans), taken from the spans by
 * refills and pushed by the owner's frees. A free touches no span field but
 * the ones it reads, so a program that frees and allocates at random stays
 * on the fast paths (with the free going to the span, 8-block spans parked
 * and unparked on almost every pair). The cache is bounded (free_bound[c],
 * class_info.cache blocks at first): a free that finds it full goes to its
 * span (heap_cache_full), as does every free in checked mode, where the bins
 * stay empty. A bound that overflows grows (see heap.c), so a thread that
 * frees and reallocates batches of a class keeps them in its cache instead
 * of sending every span through parking and the span cache.
 *
 * Invariant: every span a heap owns is on exactly one list of its bin:
 * `spans` (may have blocks; the first is the one refills take from) or `full`
 * (nothing to hand out when it was parked; tag XF_FULL), or, empty, in
 * the heap's span cache. room[c] == free_bound[c] - |free[c]| (negative
 * after a refill that brought more, or after the bound shrank).
 */
#ifndef STRATA_HEAP_H
#define STRATA_HEAP_H

#include "pageheap.h"
#include "sizeclass.h"

typedef struct bin {
  span_t *spans;          /* spans that may have free blocks */
  span_t *full;           /* spans that had none */
} bin_t;

/* Statistics counters are written by their heap's thread only, with a plain
 * add (one instruction on the fast path; an aligned 64-bit store does not
 * tear), and read by any thread with relaxed atomic loads. ThreadSanitizer
 * builds write them atomically so the tool sees no race. */
#if !STRATA_STATS
#define STAT_INC(c) ((void)0)
#elif defined(__SANITIZE_THREAD__)
#define STAT_INC(c) __atomic_store_n(&(c), (c) + 1, __ATOMIC_RELAXED)
#else
#define STAT_INC(c) ((c)++)
#endif
#define STAT_READ(c) __atomic_load_n(&(c), __ATOMIC_RELAXED)

typedef struct heap {
  block_t *free[CLASS_COUNT]; /* per class: the cache of free blocks */
  intptr_t room[CLASS_COUNT]; /* per class: pushes the cache takes before it
                                 is flushed (< 0 after a big refill; 0 in
                                 heap_empty, so a free never pushes there) */
  uint16_t free_bound[CLASS_COUNT]; /* per class: the cache's bound, from
                             class_info.cache up to class_info.cache_max */
  uint64_t overflowed;    /* bit c: the cache of c overflowed since its
                             last refill */
  uint64_t refilled;      /* bit c: refilled since the last heap_tick round */
  uint32_t ticks;         /* slow-path events so far: heap_tick's clock */
  uint32_t sparse_scan_ms; /* the last look for sparse spans to purge */
  uint32_t relieved_ms;   /* the last heap_relieve */
  uint32_t sparse_waiting; /* spans that may be sparse and not purged: those
                             marked, adopted or found with a clock since the
                             last walk of the bins (an upper bound; 0: none) */
  uint32_t sparse_walked; /* spans that walk looked at */
  uint32_t free_extra;    /* bytes the bounds grew by, in heap_extra_total */
  uintptr_t secret;       /* copies of span_secret and span_free_key, one */
  uintptr_t free_key;     /* load away on the fast paths */
  uint64_t nmalloc[CLASS_COUNT];  /* blocks handed out (STAT_INC) */
  uint64_t nfree[CLASS_COUNT];    /* blocks freed by this thread */
  bin_t bins[CLASS_COUNT];
  lock_t cache_lock;      /* guards cache and cached_pages (see heap.c) */
  span_t *cache[CLASS_COUNT]; /* empty spans kept for reuse, per class */
  uint32_t cached_pages;
  uint8_t cache_shift;    /* the cache holds up to HEAP_CACHE_PAGES <<
                             cache_shift pages (see heap.c) */
  bool cache_overflowed;  /* the cache was full since it last ran empty */
  span_t *_Atomic ready[CLASS_COUNT]; /* per class: spans that got a remote
                                         free into an empty list (qnext) */
  uint8_t ready_wait[CLASS_COUNT]; /* per class: refills since its ready
                                     spans were last taken, while some wait */
  struct heap *next_free; /* heap pool (heaps are never unmapped: a late
                             remote free may still queue on one) */
  struct heap *next_all;  /* every heap ever made, for statistics */
} heap_t;
_Static_assert(CLASS_COUNT <= 64, "overflowed, refilled: one bit per class");

/* Empty spans a heap keeps for reuse (4 MiB at first, up to 64 MiB for a
 * thread that frees bigger batches) instead of returning them to the page
 * heap at once; the decay gives back what stays unused. */
#define HEAP_CACHE_PAGES 512
#define HEAP_CACHE_SHIFT_MAX 4

/* The calling thread's heap; &heap_empty (all bins empty) until the thread's
 * first allocation, and again after the thread's heap was torn down. */
extern __thread heap_t *heap_tls __attribute__((tls_model("initial-exec")));
extern heap_t heap_empty;

/* A link decoded from a cache block that fails this test (not 16-byte
 * aligned, or past the 47-bit user address space) was overwritten. */
#define LINK_BAD_BITS (~(((uintptr_t)1 << ADDR_BITS) - 1) | (ALIGNMENT - 1))

/* Aborts: the block at the head of a cache did not carry the free key (a
 * write after free, or a double free whose second free came from another
 * thread) or its link was overwritten. */
COLD __attribute__((noreturn)) void heap_bad_cached_block(const block_t *b);

/* Pop the head of the cache of cls; *key gets its key word ^ free_key.
 * NULL when the cache is empty, and also for a bad head (the cache is then
 * not empty): the callers' slow paths abort on it (heap_alloc_class, where
 * every miss of malloc ends up), so the fast path has no stack frame. */
static inline block_t *heap_cache_pop(heap_t *h, unsigned cls, uintptr_t *key) {
  block_t *b = h->free[cls];
  if (unlikely(b == NULL)) return NULL;
  /* Every cached block carries the key (KEY_FRESH at most) and a link that
   * decodes to an aligned user address: checked before the link is followed. */
  *key = b->key ^ h->free_key;
  uintptr_t next = b->next_enc ^ h->secret ^ (uintptr_t)b;
  if (unlikely((*key & ~(uintptr_t)KEY_FRESH) | (next & LINK_BAD_BITS))) return NULL;
  h->free[cls] = (block_t *)next;
  h->room[cls]++;
  return b;
}

/* Fast paths: no lock, no atomic read-modify-write. With `fresh` (calloc),
 * tells whether the block came zeroed from the OS. */
static inline void *heap_malloc_small(heap_t *h, unsigned cls, bool *fresh) {
  uintptr_t key;
  block_t *b = heap_cache_pop(h, cls, &key);
  if (unlikely(b == NULL)) return NULL;
  if (fresh) *fresh = key == KEY_FRESH;
  b->key = 0;             /* an allocated block does not look free */
  b->next_enc = 0;        /* nor shows the program a value made with the secret */
  STAT_INC(h->nmalloc[cls]);
  return b;
}

/* A block of class cls for the calling thread (slow path of the fast pop,
 * `fresh` as there); NULL when out of memory. */
void *heap_alloc_class(unsigned cls, bool *fresh);
/* Out of memory for cls: a block of cls or a larger class aligned to
 * `align` (a power of two <= PAGE_SIZE; its class in *got) from what the
 * calling thread has at hand (cached blocks, free blocks of its spans,
 * cached or abandoned spans), with no new span; NULL when there is none. */
void *heap_alloc_at_hand(unsigned cls, size_t align, unsigned *got, bool *fresh);

/* Free of a small block the calling thread does not own, or whose owner
 * path is slow; checks that p is a block of s. False, doing nothing, when
 * p is in a run of a large block (large.h; the caller frees it). */
bool heap_free_small_slow(void *p, const char *call);
/* The span of small block p; aborts naming `call` when p is not a block. */
span_t *heap_span_checked(const void *p, const char *call);
/* b carries the free key: abort if it is on one of the owner's lists (a
 * double free); otherwise it is a live block holding a copy of free bytes. */
void heap_check_double_free(heap_t *h, span_t *s, block_t *b, const char *call);
/* h owns s: abort if b, a block start of s, is free (purged, or on one of
 * h's lists). */
void heap_check_owned_not_free(heap_t *h, span_t *s, block_t *b, const char *call);

/* The owner's free of b (checked) finds the cache of its class full (and
 * took a room it must give back): b goes to its span, and the class's bound
 * may grow at its next refill. */
void heap_cache_full(heap_t *h, span_t *s, block_t *b);

/* The owner's push of b, a checked block of s (class cls), onto its cache,
 * or onto the span when the cache is full. */
static inline void heap_cache_push(heap_t *h, span_t *s, unsigned cls, block_t *b) {
  /* One decrement that sets the flags: heap_cache_full gives the room back. */
  if (unlikely(--h->room[cls] < 0)) {
    heap_cache_full(h, s, b);
    return;
  }
  block_encode(b, h->free[cls], h->secret);
  b->key = h->free_key;
  h->free[cls] = b;
}

/* Owner fast path; false sends the free to the checked slow path (another
 * thread's span, not a block start, a block that carries the free key). */
static inline bool heap_free_small(void *p) {
  span_t *s = span_of(p);
  heap_t *h = heap_tls;
  block_t *b = p;
  if (unlikely(atomic_load_relaxed(&s->owner) != h)) return false;
  if (unlikely(!span_fast_block_start(s, p) || block_looks_free(b, h->free_key))) return false;
  unsigned cls = s->cls;
  STAT_INC(h->nfree[cls]);
  heap_cache_push(h, s, cls, b);
  return true;
}

/* Thread exit: hand every span back (empty ones to the page heap, the rest
 * to the abandoned lists) and put the heap back in the pool. */
void heap_thread_exit(heap_t *h);
/* Threads that hold a heap now (a thread gets one at its first small
 * allocation and gives it back at exit). */
unsigned heap_threads(void);
/* Create the thread-exit key; called once by init. */
bool heap_init(void);
/* Return what the calling thread caches and sweep abandoned spans. */
void heap_collect(void);
/* Give every abandoned span that has become empty back to the page heap,
 * and purge the free pages of those that have been sparse for the decay
 * time; true while some are sparse and not yet due. */
bool heap_sweep_abandoned(void);
/* Give back cached empty spans at least `age` ms old, of every heap. */
void heap_decay(uint32_t now, uint32_t age, bool *younger);
/* Blocks handed out and freed per class, summed over every heap. */
void heap_stats(uint64_t nmalloc[CLASS_COUNT], uint64_t nfree[CLASS_COUNT]);
/* Fork: take / release / reset the heap layer's locks. */
void heap_fork_prepare(void);
void heap_fork_parent(void);
void heap_fork_child(void);

#endif
