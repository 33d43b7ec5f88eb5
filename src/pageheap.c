/* pageheap.c - segments, free page runs and their coalescing.
 *
 * Free runs are kept in lists by length (1 .. SEG_PAGES) with a bitmap of the
 * non-empty lengths; allocation takes the shortest run that fits (best fit)
 * and returns the rest. A freed run merges with free neighbours in its
 * segment. Free runs are purged, and a segment with no allocated page is
 * given back to the OS, once they have been so for the decay time (decay.h;
 * one released mmap segment is kept, purged, to damp grow/shrink cycles, and
 * break segments below the top, which cannot be unmapped, are kept purged).
 */
#include "pageheap.h"
#include "backlog.h"
#include "bitmap.h"
#include "options.h"
#include "os.h"
#include "segmap.h"

#include <string.h>

span_t span_none;     /* owner NULL, kind SPAN_NONE: never a valid block */

static lock_t ph_lock = LOCK_INIT(RANK_PAGEHEAP);
/* Serialises purges (the purge thread and malloc_trim), so a trim returns
 * only once pages another purge had taken are back; outer to ph_lock. */
static lock_t ph_purge_lock = LOCK_INIT(RANK_PAGEHEAP_PURGE);
static span_t *ph_runs[SEG_PAGES + 1];              /* free runs by length (link) */
static uint64_t ph_nonempty[(SEG_PAGES + 1 + 63) / 64];   /* lengths with a run */
/* Dirty free runs, oldest first (fifo): the decay takes them from the head
 * and stops at the first young one, so a pass costs the runs it purges, not
 * every free run (a fragmented heap has tens of thousands, mostly clean)
 * while the lock is held. A run split off a dirty one keeps its date but goes to the
 * back, so it is purged at most a decay period late. */
static FIFO(span_t) ph_dirty;
static segment_t *ph_segments;                      /* all small segments (link) */
static segment_t *ph_growable;                      /* short ones (grow_next) */
static segment_t *ph_spare;        /* empty segments, purged, for reuse (link) */
static bool ph_spare_mapped;       /* one mmap segment is among them */
static char *ph_sbrk_top;                           /* end of our break heap */
/* Guard pages (option guard=1): one page after the header and the last
 * mapped one of each segment are PROT_NONE, so an overrun off the ends of
 * the span area faults. */
static uint32_t ph_guard(void) { return options.guard; }
static uint32_t ph_first(void) { return SEG_HEADER_PAGES + ph_guard(); }
static size_t ph_mapped;                            /* segments' mapped bytes */
static size_t ph_span_pages;        /* pages in small spans (large.c counts SPAN_LARGE runs) */


static void run_push(span_t *s) {
  ASSERT(lock_held(RANK_PAGEHEAP) && s->kind == SPAN_FREE_RUN && s->npages >= 1 && s->npages <= SEG_PAGES);
  uint32_t n = s->npages;
  LIST_PUSH(&ph_runs[n], s, link);
  bitmap_set(ph_nonempty, n);
  if (s->dirty) FIFO_PUSH(&ph_dirty, s, fifo);
}

static void run_unlink(span_t *s) {
  ASSERT(lock_held(RANK_PAGEHEAP) && s->kind == SPAN_FREE_RUN);
  uint32_t n = s->npages;
  LIST_REMOVE(&ph_runs[n], s, link);
  if (!ph_runs[n]) bitmap_clear(ph_nonempty, n);
  if (s->dirty) FIFO_REMOVE(&ph_dirty, s, fifo);
}

/* The shortest free run of n pages or more (best fit). */
static span_t *run_find(uint32_t n) {
  size_t len = bitmap_next(ph_nonempty, n, SEG_PAGES + 1);
  return len <= SEG_PAGES ? ph_runs[len] : NULL;
}

static inline segment_t *seg_of_span(const span_t *s) {
  return (segment_t *)((uintptr_t)s & ~(uintptr_t)SEG_MASK);
}
static inline uint32_t span_index(const span_t *s) {
  return (uint32_t)(s - seg_of_span(s)->spans);
}

static void run_free(segment_t *seg, uint32_t i, uint32_t n, bool dirty, uint32_t now);
static void segment_unmap(segment_t *seg);
static bool pageheap_valid_locked(void);

/* Make pages [i, i+n) of seg a free run and list it; a dirty run is dated
 * `now` for the decay. */
static span_t *run_make(segment_t *seg, uint32_t i, uint32_t n, bool dirty, uint32_t now) {
  ASSERT(n >= 1 && i >= ph_first() && i + n <= seg->end - ph_guard());
  span_t *s = &seg->spans[i];
  s->kind = SPAN_FREE_RUN;
  atomic_store_relaxed(&s->owner, NULL);
  s->npages = n;
  s->dirty = dirty;
  s->dirty_ms = now;
  s->start = (char *)seg + (size_t)i * PAGE_SIZE;
  seg->pagemap[i] = s;
  seg->pagemap[i + n - 1] = s;
  run_push(s);
  return s;
}

/* Pages past the header that a segment of `end` mapped pages can hand out
 * (a guard page is its last mapped page). */
static uint32_t seg_usable(const segment_t *seg) { return seg->end - ph_guard() - ph_first(); }

/* A segment of the break heap starts with this many pages mapped and at
 * least doubles as it grows: a small program takes little address space. */
#define SEG_FIRST_PAGES 64

/* The extent (mapped pages) to ask for a segment that must give `pages`:
 * at least what holds them with the header and guards. */
static uint32_t seg_extent_for(uint32_t pages) { return ph_first() + pages + ph_guard(); }

/* A new segment from the break heap (short, growing with the break), else
 * from mmap: a whole one, or under an address-space limit the largest that
 * fits, down to `pages` pages. Its first `end` pages are mapped. */
static segment_t *segment_map(uint32_t pages) {
  uint32_t least = seg_extent_for(pages);
  if (options.sbrk) {
    char *cur = os_sbrk_current();
    if (cur) {
      char *base = (char *)align_up((uintptr_t)cur, SEG_SIZE);
      uint32_t end = least > SEG_FIRST_PAGES ? least : SEG_FIRST_PAGES;
      if ((uintptr_t)base + SEG_SIZE <= ((uintptr_t)1 << ADDR_BITS) &&
          os_sbrk_grow(cur, (size_t)(base - cur) + (size_t)end * PAGE_SIZE)) {
        char *gap = (char *)align_up((uintptr_t)cur, OS_PAGE);   /* the break is byte-grained */
        if (base > gap) os_unmap(gap, (size_t)(base - gap));      /* the alignment gap */
        segment_t *seg = (segment_t *)base;
        ph_sbrk_top = base + (size_t)end * PAGE_SIZE;
        seg->from_sbrk = true;
        seg->end = end;
        ph_mapped += (size_t)end * PAGE_SIZE;
        backlog_grew((size_t)end * PAGE_SIZE);
        return seg;
      }
    }
  }
  for (uint32_t end = SEG_PAGES;; end /= 2) {
    if (end < least) end = least;
    segment_t *seg = os_map_aligned((size_t)end * PAGE_SIZE, SEG_SIZE, 0);
    if (seg) {
      seg->from_sbrk = false;
      seg->end = end;
      ph_mapped += (size_t)end * PAGE_SIZE;
      backlog_grew((size_t)end * PAGE_SIZE);
      return seg;
    }
    if (end == least) return NULL;
  }
}

static void segment_growable(segment_t *seg) {
  if (seg->growable || seg->end == SEG_PAGES) return;
  seg->growable = true;
  seg->grow_next = ph_growable;
  ph_growable = seg;
}

static segment_t *segment_new(uint32_t pages) {
  ASSERT(lock_held(RANK_PAGEHEAP) && pages >= 1 && pages <= PAGEHEAP_MAX_RUN);
  segment_t *seg = ph_spare;
  if (seg && seg_usable(seg) >= pages) {
    LIST_REMOVE(&ph_spare, seg, link);
    if (!seg->from_sbrk) ph_spare_mapped = false;
  } else if (!(seg = segment_map(pages))) {
    return NULL;
  }
  if (!segmap_set(seg, SEG_SIZE, SEG_SMALL)) {   /* no leaf: give it back at once */
    if (seg->from_sbrk) {
      segment_unmap(seg);
    } else {
      ph_mapped -= (size_t)seg->end * PAGE_SIZE;
      os_unmap(seg, (size_t)seg->end * PAGE_SIZE);
    }
    return NULL;
  }
  for (uint32_t i = 0; i < SEG_PAGES; i++) seg->pagemap[i] = &span_none;
  if (ph_guard() &&
      !(os_protect_none((char *)seg + SEG_HEADER_PAGES * PAGE_SIZE, PAGE_SIZE) &&
        os_protect_none((char *)seg + ((size_t)seg->end - 1) * PAGE_SIZE, PAGE_SIZE)))
    fatal("malloc", seg, "mprotect of a guard page failed");
  seg->free_pages = seg_usable(seg);
  seg->growable = false;
  LIST_PUSH(&ph_segments, seg, link);
  run_make(seg, ph_first(), seg_usable(seg), false, 0);
  segment_growable(seg);
  return seg;
}

/* Under the lock: map more of seg in place so that it can give a run of
 * `pages` (the new pages join its last free run); false when the range
 * after it is taken (seg then leaves the growable list) or no memory. */
static bool segment_grow(segment_t *seg, uint32_t pages) {
  ASSERT(lock_held(RANK_PAGEHEAP) && seg->growable && seg->end < SEG_PAGES);
  uint32_t last = seg->end - ph_guard() - 1;       /* the last usable page */
  span_t *tail = seg->pagemap[last];
  uint32_t have = tail->kind == SPAN_FREE_RUN ? tail->npages : 0;
  uint32_t least = seg->end + (pages - have), end = seg->end * 2;   /* at least double */
  if (least > SEG_PAGES) return false;                               /* cannot fit */
  if (end < least) end = least;
  if (end > SEG_PAGES) end = SEG_PAGES;
  char *at = (char *)seg + (size_t)seg->end * PAGE_SIZE;
  if (seg->from_sbrk && at != ph_sbrk_top) {      /* a break segment below the top */
    seg->growable = false;
    return false;
  }
  size_t more;
  bool ok = false, taken = false;
  for (;; end = least) {                          /* under a limit: only what it needs */
    more = (size_t)(end - seg->end) * PAGE_SIZE;
    ok = seg->from_sbrk ? os_sbrk_grow(at, more) : os_map_fixed(at, more, &taken);
    if (ok || end == least) break;
  }
  if (!ok) {
    if (taken) seg->growable = false;             /* another mapping follows it closely */
    return false;
  }
  if (seg->from_sbrk) ph_sbrk_top = at + more;
  ph_mapped += more;
  backlog_grew(more);
  uint32_t from = seg->end - ph_guard();            /* the old guard page joins */
  if (ph_guard() && !(os_protect_rw((char *)seg + (size_t)from * PAGE_SIZE, PAGE_SIZE) &&
                    os_protect_none((char *)seg + ((size_t)end - 1) * PAGE_SIZE, PAGE_SIZE)))
    fatal("malloc", seg, "mprotect of a guard page failed");
  seg->end = end;
  run_free(seg, from, end - ph_guard() - from, false, os_now_ms());
  return true;
}

/* Under the lock: a free run of `pages` from a short segment grown in
 * place, else from a new segment; NULL when out of memory. */
static span_t *segment_more(uint32_t pages) {
  for (segment_t **pp = &ph_growable; *pp;) {
    segment_t *seg = *pp;
    if (seg->growable && seg->end < SEG_PAGES && segment_grow(seg, pages)) return run_find(pages);
    if (!seg->growable || seg->end == SEG_PAGES) {     /* done growing */
      seg->growable = false;
      *pp = seg->grow_next;
    } else {
      pp = &seg->grow_next;
    }
  }
  return segment_new(pages) ? run_find(pages) : NULL;
}

/* Spare break segments that the top has come down to go back too. */
static void sbrk_lower_spares(void) {
  for (bool again = true; again;) {
    again = false;
    for (segment_t *seg = ph_spare; seg; seg = seg->link.next) {
      size_t bytes = (size_t)seg->end * PAGE_SIZE;
      if (seg->from_sbrk && (char *)seg + bytes == ph_sbrk_top) {
        LIST_REMOVE(&ph_spare, seg, link);      /* before the memory goes */
        if (!os_sbrk_shrink(ph_sbrk_top, seg)) {
          LIST_PUSH(&ph_spare, seg, link);
          return;
        }
        ph_sbrk_top = (char *)seg;
        ph_mapped -= bytes;
        again = true;
        break;
      }
    }
  }
}

/* Give seg's mapping back (it is off every list and out of the segment
 * map): brk is lowered when it is the top of the break heap; a break
 * segment below the top cannot be unmapped, so it is purged and kept for
 * reuse; of mapped segments one is kept, purged, to damp cycles. */
static void segment_unmap(segment_t *seg) {
  size_t bytes = (size_t)seg->end * PAGE_SIZE;
  if (seg->from_sbrk && (char *)seg + bytes == ph_sbrk_top && os_sbrk_shrink(ph_sbrk_top, seg)) {
    ph_sbrk_top = (char *)seg;
    ph_mapped -= bytes;
    sbrk_lower_spares();
    return;
  }
  if (!seg->from_sbrk && ph_spare_mapped) {
    os_unmap(seg, bytes);
    ph_mapped -= bytes;
    return;
  }
  os_purge((char *)seg + SEG_HEADER_PAGES * PAGE_SIZE, bytes - SEG_HEADER_PAGES * PAGE_SIZE);
  if (!seg->from_sbrk) ph_spare_mapped = true;
  LIST_PUSH(&ph_spare, seg, link);
}

/* The segment has no allocated page: its one free run goes, and so does
 * the segment. */
static void segment_release(segment_t *seg) {
  ASSERT(lock_held(RANK_PAGEHEAP) && seg->free_pages == seg_usable(seg));
  run_unlink(&seg->spans[ph_first()]);
  LIST_REMOVE(&ph_segments, seg, link);
  if (seg->growable) {
    for (segment_t **pp = &ph_growable; *pp; pp = &(*pp)->grow_next)
      if (*pp == seg) { *pp = seg->grow_next; break; }
    seg->growable = false;
  }
  segmap_clear(seg, SEG_SIZE, SEG_SMALL);
  segment_unmap(seg);
}

_Atomic uint32_t pageheap_clean_runs;

span_t *pageheap_alloc_span(uint32_t npages, uint8_t kind) {
  ASSERT(npages >= 1 && npages <= PAGEHEAP_MAX_RUN);
  lock_acquire(&ph_lock);
  span_t *run = run_find(npages);
  if (!run) run = segment_more(npages);
  if (!run) { lock_release(&ph_lock); return NULL; }
  run_unlink(run);
  segment_t *seg = seg_of_span(run);
  ASSERT(run->npages >= npages && seg_of_span(run)->free_pages >= npages);
  uint32_t i = span_index(run), total = run->npages;
  bool dirty = run->dirty;
  if (!dirty) atomic_add_relaxed(&pageheap_clean_runs, 1);
  if (total > npages) run_make(seg, i + npages, total - npages, dirty, run->dirty_ms);
  seg->free_pages -= npages;
  if (kind == SPAN_SMALL) ph_span_pages += npages;
  /* Under the lock: a neighbour being freed reads these entries to merge. */
  span_t *s = &seg->spans[i];
  s->kind = kind;
  s->npages = npages;
  s->dirty = dirty;
  s->start = (char *)seg + (size_t)i * PAGE_SIZE;
  for (uint32_t k = 0; k < npages; k++) seg->pagemap[i + k] = s;
  lock_release(&ph_lock);
  return s;
}

/* Under the lock: pages [i, i+n) of seg become free, merged with free
 * neighbours (the merged run is dirty if any part is). */
static void run_free(segment_t *seg, uint32_t i, uint32_t n, bool dirty, uint32_t now) {
  ASSERT(lock_held(RANK_PAGEHEAP) && n >= 1 && i >= ph_first() && i + n <= seg->end - ph_guard());
  uint32_t freed = n;
  for (uint32_t k = 0; k < n; k++) seg->pagemap[i + k] = &span_none;
  span_t *right = i + n < SEG_PAGES ? seg->pagemap[i + n] : &span_none;
  if (right->kind == SPAN_FREE_RUN) {          /* absorb the run after */
    run_unlink(right);
    dirty |= right->dirty;
    seg->pagemap[i + n] = &span_none;
    n += right->npages;
  }
  span_t *left = seg->pagemap[i - 1];
  if (left->kind == SPAN_FREE_RUN) {           /* join the run before */
    run_unlink(left);
    dirty |= left->dirty;
    seg->pagemap[i - 1] = &span_none;
    i = span_index(left);
    n += left->npages;
  }
  run_make(seg, i, n, dirty, now);
  seg->free_pages += freed;           /* an empty segment waits for the decay */
}

void pageheap_free_span(span_t *s) {
  ASSERT((s->kind == SPAN_SMALL || s->kind == SPAN_LARGE) && s->npages >= 1 && s->start == (char *)seg_of_span(s) + (size_t)span_index(s) * PAGE_SIZE);
  uint32_t now = os_now_ms(), npages = s->npages;
  lock_acquire(&ph_lock);
  atomic_store_relaxed(&s->owner, NULL);
  if (s->kind == SPAN_SMALL) ph_span_pages -= npages;
  s->kind = SPAN_FREE_RUN;
  run_free(seg_of_span(s), span_index(s), npages, true, now);   /* s may be gone */
  lock_release(&ph_lock);
  backlog_note((size_t)npages * PAGE_SIZE);
}

/* The madvise calls run with the lock released: a batch of runs is taken
 * off the free lists first (kind SPAN_PURGING, their pages out of
 * free_pages, so no allocation, merge or segment release touches them), then
 * put back clean. */
#define PURGE_BATCH 32
/* Under the lock: segments empty for at least `age` ms go back to the OS
 * (keeping them that long saves a release and a refault per burst). */
static void release_empty_segments(uint32_t now, uint32_t age, bool *younger) {
  for (segment_t *seg = ph_segments, *next; seg; seg = next) {
    next = seg->link.next;
    if (seg->free_pages != seg_usable(seg)) continue;
    if (os_ms_since(now, seg->spans[ph_first()].dirty_ms) < age) { *younger = true; continue; }
    segment_release(seg);
  }
}

static void pageheap_decay(uint32_t now, uint32_t age, bool *younger) {
  lock_acquire(&ph_purge_lock);
  lock_acquire(&ph_lock);
  release_empty_segments(now, age, younger);
  lock_release(&ph_lock);
  for (;;) {
    span_t *batch[PURGE_BATCH];
    unsigned nb = 0;
    lock_acquire(&ph_lock);
    for (span_t *r = ph_dirty.head; r && nb < PURGE_BATCH; r = r->fifo.next) {
      if (os_ms_since(now, r->dirty_ms) < age) { *younger = true; break; }
      batch[nb++] = r;
    }
    for (unsigned k = 0; k < nb; k++) {
      run_unlink(batch[k]);
      batch[k]->kind = SPAN_PURGING;
      seg_of_span(batch[k])->free_pages -= batch[k]->npages;
    }
    lock_release(&ph_lock);
    if (!nb) break;
    /* With MADV_FREE the pages may keep their bytes: the page heap does not
     * care (spans are carved, calloc clears small blocks), so runs come back
     * clean either way. */
    for (unsigned k = 0; k < nb; k++)
      os_purge_decayed(batch[k]->start, (size_t)batch[k]->npages * PAGE_SIZE, options.purge_free);
    lock_acquire(&ph_lock);
    for (unsigned k = 0; k < nb; k++) {      /* run_free adds the pages back */
      batch[k]->kind = SPAN_FREE_RUN;
      run_free(seg_of_span(batch[k]), span_index(batch[k]), batch[k]->npages, false, now);
    }
    EXPENSIVE_ASSERT(pageheap_valid_locked());
    lock_release(&ph_lock);
  }
  lock_release(&ph_purge_lock);
}

static bool pageheap_trim(void) {
  bool younger = false;
  size_t returned = atomic_load_relaxed(&os_returned);
  pageheap_decay(os_now_ms(), 0, &younger);
  lock_acquire(&ph_lock);
  sbrk_lower_spares();
  for (segment_t *seg = ph_spare, *next; seg; seg = next) {
    next = seg->link.next;
    if (seg->from_sbrk) continue;
    size_t bytes = (size_t)seg->end * PAGE_SIZE;
    LIST_REMOVE(&ph_spare, seg, link);
    os_unmap(seg, bytes);
    ph_mapped -= bytes;
    ph_spare_mapped = false;
  }
  EXPENSIVE_ASSERT(pageheap_valid_locked());
  lock_release(&ph_lock);
  return atomic_load_relaxed(&os_returned) != returned;
}

static void pageheap_stats(tier_stats_t *st) {
  lock_acquire(&ph_lock);
  st->mapped += ph_mapped;
  st->active += ph_span_pages * PAGE_SIZE;
  for (segment_t *seg = ph_segments; seg; seg = seg->link.next)
    st->resident += os_resident(seg, (size_t)seg->end * PAGE_SIZE);
  for (segment_t *seg = ph_spare; seg; seg = seg->link.next)
    st->resident += os_resident(seg, (size_t)seg->end * PAGE_SIZE);
  for (span_t *r = ph_dirty.head; r; r = r->fifo.next) st->dirty += (size_t)r->npages * PAGE_SIZE;
  lock_release(&ph_lock);
}

const tier_t pageheap_tier = {
  .name = "pageheap",
  .decay = pageheap_decay,
  .trim = pageheap_trim,
  .locks = { &ph_purge_lock, &ph_lock },
  .stats = pageheap_stats,
  .valid = pageheap_valid,
};

/* ---- validity --------------------------------------------------------------------- */
static bool segment_valid(const segment_t *seg) {
  uint32_t end = seg->end, first = ph_first(), free = 0;
  if (end > SEG_PAGES || end < first + 1 + ph_guard()) return false;
  for (uint32_t i = 0; i < first; i++)
    if (seg->pagemap[i] != &span_none) return false;
  for (uint32_t i = first; i < end - ph_guard();) {
    const span_t *s = seg->pagemap[i];
    if (s == &span_none || s != &seg->spans[i] || s->npages == 0 || i + s->npages > end - ph_guard() ||
        s->start != (char *)seg + (size_t)i * PAGE_SIZE)
      return false;
    if (s->kind == SPAN_FREE_RUN) {
      free += s->npages;
      if (seg->pagemap[i + s->npages - 1] != s) return false;
      for (uint32_t k = i + 1; k + 1 < i + s->npages; k++)
        if (seg->pagemap[k] != &span_none) return false;
      if (i + s->npages < end - ph_guard() && seg->pagemap[i + s->npages]->kind == SPAN_FREE_RUN)
        return false;                       /* two free runs side by side: unmerged */
    } else if (s->kind == SPAN_PURGING) {
      /* off the lists, its pages out of free_pages, while the purge runs */
    } else {
      for (uint32_t k = i; k < i + s->npages; k++)
        if (seg->pagemap[k] != s) return false;
    }
    i += s->npages;
  }
  for (uint32_t i = end - ph_guard(); i < SEG_PAGES; i++)
    if (seg->pagemap[i] != &span_none) return false;
  return free == seg->free_pages;
}

static bool pageheap_valid_locked(void) {
  size_t dirty = 0;
  for (const segment_t *seg = ph_segments; seg; seg = seg->link.next)
    if (!segment_valid(seg)) return false;
  for (uint32_t n = 1; n <= SEG_PAGES; n++) {
    if (!ph_runs[n] != !bitmap_get(ph_nonempty, n)) return false;
    for (const span_t *r = ph_runs[n]; r; r = r->link.next)
      if (r->kind != SPAN_FREE_RUN || r->npages != n) return false;
  }
  for (const span_t *r = ph_dirty.head; r; r = r->fifo.next, dirty++)
    if (!r->dirty || r->kind != SPAN_FREE_RUN || (r->fifo.next && r->fifo.next->fifo.prev != r)) return false;
  size_t dirty_runs = 0;
  for (uint32_t n = 1; n <= SEG_PAGES; n++)
    for (const span_t *r = ph_runs[n]; r; r = r->link.next) dirty_runs += r->dirty;
  return dirty == dirty_runs;
}

bool pageheap_valid(void) {
  lock_acquire(&ph_lock);
  bool ok = pageheap_valid_locked();
  lock_release(&ph_lock);
  return ok;
}
