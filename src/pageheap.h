/* pageheap.h - the global page heap: owns the small tier's 4 MiB segments
 * (from the program break while it can be moved contiguously, else mmap)
 * and hands out runs of 8 KiB pages as spans (and, under an address-space
 * limit, as large blocks: large.c); free runs coalesce; after the decay
 * time free runs are purged and empty segments go back to the OS (brk is
 * lowered when the top of the break heap is free).
 *
 * Locks (lock.h): pageheap_purge_lock (one purge at a time) then the page
 * heap's lock (everything else); the segment map's lock is taken under it.
 */
#ifndef STRATA_PAGEHEAP_H
#define STRATA_PAGEHEAP_H

#include "span.h"
#include "tier.h"

/* Segment header. Invariant (segment_valid): pagemap[i] is the span whose
 * pages include i for every page of an allocated span, the head of a free
 * run for its first and last page, and &span_none everywhere else (header
 * pages, the interior of free runs, pages past `end`), so any pointer into
 * a small segment maps to a span struct; free_pages is the pages of its
 * free runs. Only the first `end` pages are mapped: a segment starts short
 * where address space is scarce (the first one of the break heap, or under
 * a limit) and grows in place while the range after it is free. */
typedef struct segment {
  /* First, so that they share an OS page with the pagemap's first entries
   * and the spans of the first runs: a program that uses a few spans
   * makes two OS pages of the header resident, not three. */
  LIST_LINK(struct segment) link;   /* all small segments, or the spares */
  struct segment *grow_next;        /* short segments that may grow */
  uint32_t free_pages;              /* pages in free runs */
  _Atomic uint32_t end;             /* pages mapped (header included); grows
                                       under the lock, read by strata_owns */
  bool from_sbrk;
  bool growable;                    /* on the growable list */
  span_t *pagemap[SEG_PAGES];
  span_t spans[SEG_PAGES];          /* valid at the head page of each run */
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

/* A run of npages pages (<= PAGEHEAP_MAX_RUN) with its kind, start and
 * npages set (kind is written under the lock: neighbours being freed read
 * it), dirty telling whether it may hold non-zero bytes; NULL when out of
 * memory. */
span_t *pageheap_alloc_span(uint32_t npages, uint8_t kind);
void pageheap_free_span(span_t *s);
/* Runs of clean pages (never used, or purged) handed out so far: each one
 * makes the program's resident memory grow as it is used. */
extern _Atomic uint32_t pageheap_clean_runs;

/* Expensive walk: every segment's pagemap and counts, every free run on
 * the list of its length and the FIFO when dirty (under the lock). */
bool pageheap_valid(void);

/* decay: free runs dirty for the decay time, segments empty that long;
 * trim: every free run and empty segment, the spares; stats: the small
 * tier's active, resident, mapped and dirty bytes. */
extern const tier_t pageheap_tier;

#endif
