/* heap_types.h - the thread heap's structures, shared by heap.c and its
 * parts: bin.c (a class's spans), bcache.c (the block cache), spare.c (the
 * spare spans), sparse.c (sparse spans), ready.c (the remote frees' ready
 * lists) and abandon.c (spans of exited threads).
 *
 * Each class c of a heap has:
 *   - a block cache: free[c], a list of free blocks of any span of the bin
 *     (counted as used by their spans), which the fast paths pop and push;
 *     room[c] pushes it takes before it is full, bounded by free_bound[c];
 *   - a count down to the class's next sample (prof.h), left[c], which each
 *     pop of an allocation counts and the statistics read;
 *   - a bin: the spans of the class the heap owns, `spans` (may have free
 *     blocks; the first is the one refills take from) or `full` (nothing to
 *     hand out when it was parked: tag XF_FULL);
 *   - spare spans: empty spans kept for reuse, under spare_lock;
 *   - a ready list: spans other threads' frees queued (ready.c).
 *
 * Invariants (heap_valid checks them):
 *   - every span the heap owns is on exactly one list of its bin, or,
 *     empty, among its spare spans;
 *   - room[c] == free_bound[c] - |free[c]| (negative after a refill that
 *     brought more, or after the bound shrank), and
 *     class_info[c].cache <= free_bound[c] <= class_info[c].cache_max;
 *   - room[c] == room_base[c] + pops - pushes, where pops are the
 *     allocations' pops (heap_nmalloc) and pushes the owner's frees onto
 *     the cache, so the fast free counts nothing (heap_nfree);
 *   - spare_pages is the pages of the spare spans;
 *   - free_extra == sum over c of (free_bound[c] - class_info[c].cache) *
 *     class size.
 */
#ifndef STRATA_HEAP_TYPES_H
#define STRATA_HEAP_TYPES_H

#include "lock.h"
#include "sizeclass.h"
#include "span.h"

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
#define STAT_SET(c, v) __atomic_store_n(&(c), (v), __ATOMIC_RELAXED)

/* The pop's count down, a counter of the same kind; its new value. It is
 * always compiled: the profiler samples with it. */
#if defined(__SANITIZE_THREAD__)
#define COUNT_DOWN(c) (STAT_SET(c, (c) - 1), (c))
#else
#define COUNT_DOWN(c) (--(c))
#endif

/* Pushes on the cache are counted from room (heap_types.h invariants), but
 * in ThreadSanitizer builds, where the statistics must not read room (the
 * fast paths write it plainly): the push counts them with STAT_INC. */
#if defined(__SANITIZE_THREAD__)
#define HEAP_PUSH_COUNTED 1
#else
#define HEAP_PUSH_COUNTED 0
#endif

typedef struct heap {
  block_t *free[CLASS_COUNT]; /* per class: the block cache */
  intptr_t room[CLASS_COUNT]; /* per class: pushes the cache takes before it
                                 is full (< 0 after a big refill; 0 in
                                 heap_empty, so a free never pushes there) */
  uint16_t free_bound[CLASS_COUNT]; /* per class: the cache's bound, from
                             class_info.cache up to class_info.cache_max */
  uint64_t overflowed;    /* bit c: the cache of c overflowed since its
                             last refill */
  uint64_t refilled;      /* bit c: refilled since the last heap_tick round */
  uint32_t ticks;         /* slow-path events so far: heap_tick's clock */
  uint32_t sparse_scan_ms; /* the last look for sparse spans to purge */
  uint32_t relieved_ms;   /* the last sparse_relieve */
  uint32_t sparse_waiting; /* spans that may be sparse and not purged: those
                             marked, adopted or found with a clock since the
                             last walk of the bins (an upper bound; 0: none) */
  uint32_t sparse_walked; /* spans that walk looked at */
  uint32_t free_extra;    /* bytes the bounds grew by (bcache.c's budget) */
  uintptr_t secret;       /* copies of span_secret and span_free_key, one */
  uintptr_t free_key;     /* load away on the fast paths */
  intptr_t left[CLASS_COUNT];     /* per class: pops before the next sample;
                                     < 0: a pop found it at 0 and left its
                                     block (heap_sample_take is due) */
  uint64_t nmalloc_at_zero[CLASS_COUNT]; /* blocks handed out by the time
                                     left[c] reaches 0 (heap_nmalloc) */
  intptr_t room_base[CLASS_COUNT]; /* what the slow paths added to room[c] */
  uint64_t nfree[CLASS_COUNT];    /* blocks freed by this thread but for the
                                     pushes on its cache */
  bin_t bins[CLASS_COUNT];
  lock_t spare_lock;      /* guards the spare_ fields (spare.c) */
  span_t *spare[CLASS_COUNT]; /* empty spans kept for reuse, per class */
  uint32_t spare_pages;
  uint8_t spare_shift;    /* the spare spans take up to SPARE_PAGES <<
                             spare_shift pages (spare.c) */
  bool spare_overflowed;  /* the spare spans were full since they last ran out */
  span_t *_Atomic ready[CLASS_COUNT]; /* per class: spans that got a remote
                                         free into an empty list (qnext) */
  uint8_t ready_wait[CLASS_COUNT]; /* per class: refills since its ready
                                     spans were last taken, while some wait */
  struct heap *next_free; /* heap pool (heaps are never unmapped: a late
                             remote free may still queue on one) */
  struct heap *next_all;  /* every heap ever made, for statistics */
} heap_t;
_Static_assert(CLASS_COUNT <= 64, "overflowed, refilled: one bit per class");

/* The heap of a thread with none: all bins empty, room 0 (bcache.c: the
 * fast paths see only its caches). */
extern heap_t heap_empty;

#endif
