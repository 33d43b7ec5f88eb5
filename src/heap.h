/* heap.h - the per-thread heap: one bin per size class.
 *
 * Allocation code overview:
 *   strata_malloc -> heap_malloc_small (inline: pop bins[c].free)
 *                 -> heap_alloc_class -> heap_refill -> span_take_free
 *                    -> adopt an abandoned span -> pageheap_alloc_span
 *   strata_free   -> heap_free_small (inline: owner pushes on local_free)
 *                 -> heap_free_small_slow (remote CAS push, checks)
 *
 * A bin's `free` list holds blocks of its first span, checked out (counted
 * as used). Invariant: every span a heap owns is on exactly one list of its
 * bin: `spans` (may have blocks; the first is the one being allocated from)
 * or `full` (nothing to hand out when it was parked; flag SPAN_FULL).
 */
#ifndef STRATA_HEAP_H
#define STRATA_HEAP_H

#include "pageheap.h"
#include "sizeclass.h"

typedef struct bin {
  block_t *free;          /* checked-out blocks of spans (the head span) */
  span_t *spans;          /* spans that may have free blocks */
  span_t *full;           /* spans that had none */
} bin_t;

typedef struct heap {
  bin_t bins[CLASS_COUNT];
  span_t *_Atomic ready;  /* full spans that got remote frees (qnext list) */
  struct heap *next_free; /* heap pool (heaps are never unmapped: a late
                             remote free may still queue on one) */
} heap_t;

/* The calling thread's heap; &heap_empty (all bins empty) until the thread's
 * first allocation, and again after the thread's heap was torn down. */
extern __thread heap_t *heap_tls __attribute__((tls_model("initial-exec")));
extern heap_t heap_empty;

/* Fast paths: no lock, no atomic read-modify-write. */
static inline void *heap_malloc_small(heap_t *h, unsigned cls) {
  block_t *b = h->bins[cls].free;
  if (unlikely(b == NULL)) return NULL;
  h->bins[cls].free = block_next(b);
  b->next_enc = 0;        /* an allocated block never looks like a free one */
  return b;
}

/* A block of class cls for the calling thread (slow path of the fast pop);
 * NULL when out of memory. */
void *heap_alloc_class(unsigned cls);

/* Free of a small block the calling thread does not own, or whose owner
 * path is slow; checks that p is a block of s. */
void heap_free_small_slow(void *p, const char *call);
/* The span of small block p; aborts naming `call` when p is not a block. */
span_t *heap_span_checked(const void *p, const char *call);
/* A parked (full-list) span carries USED_PARKED in `used`, so the owner's
 * free fast path notices both "span now empty" and "span was parked" with a
 * single compare: used - 1 >= USED_PARKED - 1 after the decrement. */
#define USED_PARKED 0x80000000u
void heap_free_local_slow(heap_t *h, span_t *s);
/* The block's first word decodes to a link within its segment, as on a free
 * list: abort if it is on one of the owner's lists (a double free). */
void heap_check_double_free(heap_t *h, span_t *s, block_t *b, const char *call);

/* Does b hold an encoded free-list link (NULL or into b's own segment)?
 * Allocated blocks hold 0 or the program's data, which decodes to neither
 * but with a chance of about 2^-42 for random data. */
static inline bool block_looks_free(const block_t *b) {
  uintptr_t link = (uintptr_t)block_next(b);
  return link == 0 || ((link ^ (uintptr_t)b) >> SEG_SHIFT) == 0;
}

/* The owner's push; the caller has checked that b is a block of s. */
static inline void heap_push_local(heap_t *h, span_t *s, block_t *b) {
  block_set_next(b, s->local_free);
  s->local_free = b;
  if (unlikely(--s->used - 1 >= USED_PARKED - 1)) heap_free_local_slow(h, s);
}

/* Owner fast path; false sends the free to the checked slow path (another
 * thread's span, not a block start, or a block that looks already free). */
static inline bool heap_free_small(void *p) {
  span_t *s = span_of(p);
  heap_t *h = heap_tls;
  if (unlikely(atomic_load_relaxed(&s->owner) != h)) return false;
  if (unlikely(!span_is_block_start(s, p) || block_looks_free(p))) return false;
  heap_push_local(h, s, p);
  return true;
}

/* Thread exit: hand every span back (empty ones to the page heap, the rest
 * to the abandoned lists) and put the heap back in the pool. */
void heap_thread_exit(heap_t *h);
/* Create the thread-exit key; called once by init. */
bool heap_init(void);
/* Return what the calling thread caches and sweep abandoned spans. */
void heap_collect(void);
/* Fork: take / release / reset the heap layer's locks. */
void heap_fork_prepare(void);
void heap_fork_parent(void);
void heap_fork_child(void);

#endif
