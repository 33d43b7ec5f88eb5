/* heap.h - the thread heap: what the API calls.
 *
 * Allocation code overview:
 *   strata_malloc -> heap_malloc_small (inline: pop the block cache)
 *                 -> heap_alloc_class -> heap_refill -> span_take_free
 *                    -> a spare span -> an adopted span -> a new span
 *   strata_free   -> heap_free_small (inline: the owner pushes on the block
 *                    cache, or on the span when the cache is full)
 *                 -> heap_free_small_slow (another thread's span: remote CAS
 *                    push, ready.c; an abandoned span: adopt it; checks)
 *
 * heap.c holds the heaps' life (a heap per thread, from a pool; the orphan
 * heap of a thread whose heap was torn down), refills, the slow frees and
 * the tier operations; heap_types.h the structures and their invariants.
 */
#ifndef STRATA_HEAP_H
#define STRATA_HEAP_H

#include "bcache.h"
#include "pageheap.h"
#include "tier.h"

/* The calling thread's heap; &heap_empty (all bins empty) until the thread's
 * first allocation, and again after the thread's heap was torn down. */
extern __thread heap_t *heap_tls __attribute__((tls_model("initial-exec")));

/* Fast paths: no lock, no atomic read-modify-write. With `fresh` (calloc),
 * tells whether the block came zeroed from the OS. */
static inline void *heap_malloc_small(heap_t *h, unsigned cls, bool *fresh) {
  /* One count down serves the statistics and the profiler: a pop that finds
   * it at 0 leaves its block, and the slow path takes the sample. */
  if (unlikely(h->free[cls] == NULL) || unlikely(COUNT_DOWN(h->left[cls]) < 0)) return NULL;
  uintptr_t key;
  block_t *b = bcache_pop(h, cls, &key);
  if (unlikely(b == NULL)) return NULL;
  h->room[cls]++;
  if (fresh) *fresh = key == KEY_FRESH;
  b->key = 0;             /* an allocated block does not look free */
  b->next_enc = 0;        /* nor shows the program a value made with the secret */
  return b;
}

/* A pop of the calling thread's cache of cls left its block: the class's
 * sample is due. */
static inline bool heap_sample_pending(unsigned cls) { return heap_tls->left[cls] < 0; }
/* The sample of cls is being taken: count down to the next one. */
void heap_sample_take(unsigned cls);

/* Owner fast path; false sends the free to the checked slow path (another
 * thread's span, not a block start, a block that carries the free key). */
static inline bool heap_free_small(void *p) {
  span_t *s = span_of(p);
  heap_t *h = heap_tls;
  block_t *b = p;
  if (unlikely(atomic_load_relaxed(&s->owner) != h)) return false;
  if (unlikely(!span_fast_block_start(s, p) || block_looks_free(b, h->free_key))) return false;
  unsigned cls = s->cls;
  if (HEAP_PUSH_COUNTED) STAT_INC(h->nfree[cls]);
  bcache_push(h, s, cls, b);
  return true;
}

/* A block of class cls for the calling thread (the slow path of the fast
 * pop, `fresh` as there); NULL when out of memory, or when the class's
 * sample is due (heap_sample_pending). */
void *heap_alloc_class(unsigned cls, bool *fresh);
/* Out of memory for cls: a block of cls or a larger class aligned to
 * `align` (a power of two <= PAGE_SIZE; its class in *got) from what the
 * calling thread has at hand (cached blocks, free blocks of its spans,
 * spare or abandoned spans), with no new span; NULL when there is none. */
void *heap_alloc_at_hand(unsigned cls, size_t align, unsigned *got, bool *fresh);

/* Free of a small block the calling thread does not own, or whose owner
 * path is slow; checks that p is a block of its span. False, doing nothing,
 * when p is in a run of a large block (large.h; the caller frees it). */
bool heap_free_small_slow(void *p, const char *call);
/* The span of small block p; aborts naming `call` when p is not a block. */
span_t *heap_span_checked(const void *p, const char *call);
/* h owns s: abort if b, a block start of s, is free (purged, or on one of
 * h's lists). */
void heap_check_owned_not_free(heap_t *h, span_t *s, block_t *b, const char *call);

/* Create the thread-exit key; called once by init. */
bool heap_init(void);
/* Blocks handed out and freed per class, summed over every heap. */
void heap_class_stats(uint64_t nmalloc[CLASS_COUNT], uint64_t nfree[CLASS_COUNT]);
/* Expensive walk of h's invariants (heap_types.h); the owner's, or with
 * the heap's thread gone. */
bool heap_valid(heap_t *h);

/* decay: pooled heaps' queued spans, abandoned spans, spare spans; trim:
 * the calling thread's caches, then every heap's spares; fork: the orphan,
 * pool, abandoned and spare locks. */
extern const tier_t heap_tier;

#endif
