/* pageheap.h - the global page heap: owns 4 MiB segments (from the program
 * break while it can be moved contiguously, else mmap) and hands out runs of
 * 8 KiB pages as spans; free runs coalesce; after the decay time free runs
 * are purged and empty segments go back to the OS (brk is lowered when the
 * top of the break heap is free). It also maps and
 * unmaps the 64 MiB arenas of the large tier.
 *
 * Locks: ph_purge_lock (serialises purges) then ph_lock (everything else), taken
 * last of the global locks (see init.c for the order).
 */
#ifndef STRATA_PAGEHEAP_H
#define STRATA_PAGEHEAP_H

#include "span.h"

/* Segment header. Invariant: pagemap[i] is the span whose pages include i
 * for every page of an allocated span, the head of a free run for its first
 * and last page, and &span_none everywhere else (header pages, the interior
 * of free runs, pages past `end`), so any pointer into a small segment maps
 * to a span struct. Only the first `end` pages are mapped: a segment starts
 * short where address space is scarce (the first one of the break heap, or
 * under a limit) and grows in place while the range after it is free. */
typedef struct segment {
  span_t *pagemap[SEG_PAGES];
  span_t spans[SEG_PAGES];          /* valid at the head page of each run */
  struct segment *next, *prev;      /* all small segments */
  struct segment *grow_next;        /* short segments that may grow */
  uint32_t free_pages;              /* pages in free runs */
  _Atomic uint32_t end;             /* pages mapped (header included); grows
                                       under the lock, read by strata_owns */
  bool from_sbrk;
  bool growable;                    /* on the growable list */
} segment_t;

#define SEG_HEADER_PAGES ((sizeof(segment_t) + PAGE_SIZE - 1) / PAGE_SIZE)
#define SEG_USABLE_PAGES (SEG_PAGES - SEG_HEADER_PAGES)
/* The longest run pageheap_alloc_span serves, guard pages or not. */
#define PAGEHEAP_MAX_RUN (SEG_USABLE_PAGES - 2)

extern span_t span_none;

static inline segment_t *segment_of(const void *p) {
  return (segment_t *)(((uintptr_t)p - 1) & ~(uintptr_t)SEG_MASK);
}
static inline span_t *span_of(const void *p) {
  segment_t *seg = segment_of(p);
  return seg->pagemap[((uintptr_t)p - (uintptr_t)seg) >> PAGE_SHIFT];
}

/* Does p lie in the mapped part of the small segment holding it? */
static inline bool pageheap_mapped(const void *p) {
  segment_t *seg = segment_of(p);
  return (((uintptr_t)p - 1 - (uintptr_t)seg) >> PAGE_SHIFT) < atomic_load_relaxed(&seg->end);
}

/* A run of npages pages (<= SEG_USABLE_PAGES) with its kind, start and
 * npages set (kind is written under the lock: neighbours being freed read
 * it), dirty telling whether it may hold non-zero bytes; NULL when out of
 * memory. */
span_t *pageheap_alloc_span(uint32_t npages, uint8_t kind);
/* Runs of clean pages (never used, or purged) handed out so far: each one
 * makes the program's resident memory grow as it is used. */
extern _Atomic uint32_t pageheap_clean_runs;
void pageheap_free_span(span_t *s);

/* A zeroed 64 MiB arena aligned to its size, registered in the segment map;
 * NULL when out of memory. */
void *pageheap_alloc_arena(void);
void pageheap_free_arena(void *arena);

/* Purge free runs that have been dirty for at least `age` ms; returns the
 * bytes purged and sets *younger when dirty runs too young are left. */
size_t pageheap_decay(uint32_t now, uint32_t age, bool *younger);
/* Purge every free run, give empty segments back; true if anything went. */
bool pageheap_trim(void);

typedef struct {
  size_t mapped;        /* small segments (spares included) and arenas */
  size_t span_bytes;    /* pages in spans handed to thread heaps */
  size_t resident;      /* of the small segments (mincore) */
  size_t dirty_free;    /* free runs not yet purged */
} pageheap_stats_t;
void pageheap_stats(pageheap_stats_t *st);

void pageheap_lock(void);
void pageheap_unlock(void);
void pageheap_reinit_lock(void);
void pageheap_set_sbrk(bool use);
/* Guard pages around each segment's span area (option guard=1). */
void pageheap_set_guard(bool guard);

#endif
