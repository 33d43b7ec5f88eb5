/* pageheap.c - segments, free page runs and their coalescing.
 *
 * Free runs are kept in lists by length (1 .. SEG_PAGES) with a bitmap of the
 * non-empty lengths; allocation takes the shortest run that fits (best fit)
 * and returns the rest. A freed run merges with free neighbours in its
 * segment. Free runs are purged, and a segment with no allocated page is
 * given back to the OS, once they have been so for the decay time (decay.h;
 * one released segment is kept, purged, to damp grow/shrink cycles).
 */
#include "pageheap.h"
#include "os.h"
#include "decay.h"
#include "segmap.h"

#include <string.h>

span_t span_none;     /* owner NULL, kind SPAN_NONE: never a valid block */

static lock_t ph_lock = LOCK_INIT;
/* Serialises purges (the purge thread and malloc_trim), so a trim returns
 * only once pages another purge had taken are back; outer to ph_lock. */
static lock_t ph_purge_lock = LOCK_INIT;
static span_t *ph_runs[SEG_PAGES + 1];              /* free runs by length */
static uint64_t ph_nonempty[(SEG_PAGES + 1 + 63) / 64];
/* Dirty free runs, oldest first (dirty_next / dirty_prev): the decay takes
 * them from the head and stops at the first young one, instead of walking
 * every free run once per batch with the lock held (a fragmented heap has
 * tens of thousands, mostly clean). A run split off a dirty one keeps its
 * date but goes to the back, so it is purged at most a decay period late. */
static span_t *ph_dirty_head, *ph_dirty_tail;
static segment_t *ph_segments;                      /* all small segments */
static segment_t *ph_growable;                      /* short ones (grow_next) */
static segment_t *ph_spare;        /* empty segments, purged, for reuse */
static bool ph_spare_mapped;       /* one mmap segment is among them */
static char *ph_sbrk_top;                           /* end of our break heap */
static bool ph_use_sbrk = true;
/* Guard pages (option guard=1): one page after the header and the last
 * mapped one of each segment are PROT_NONE, so an overrun off the ends of
 * the span area faults. ph_first: the span area's first page. */
static uint32_t ph_first = SEG_HEADER_PAGES;
static uint32_t ph_guard;
static size_t ph_mapped;                            /* segments and arenas */
static size_t ph_span_pages;                        /* pages in allocated spans */

void pageheap_lock(void) { lock_acquire(&ph_purge_lock); lock_acquire(&ph_lock); }
void pageheap_unlock(void) { lock_release(&ph_lock); lock_release(&ph_purge_lock); }
void pageheap_reinit_lock(void) { lock_reinit(&ph_lock); lock_reinit(&ph_purge_lock); }
void pageheap_set_sbrk(bool use) { ph_use_sbrk = use; }
void pageheap_set_guard(bool guard) {
  ph_guard = guard;
  ph_first = SEG_HEADER_PAGES + guard;
}

static void run_push(span_t *s) {
  uint32_t n = s->npages;
  s->prev = NULL;
  s->next = ph_runs[n];
  if (s->next) s->next->prev = s;
  ph_runs[n] = s;
  ph_nonempty[n / 64] |= (uint64_t)1 << (n % 64);
  if (s->dirty) {
    s->dirty_next = NULL;
    s->dirty_prev = ph_dirty_tail;
    if (ph_dirty_tail) ph_dirty_tail->dirty_next = s;
    else ph_dirty_head = s;
    ph_dirty_tail = s;
  }
}

static void run_unlink(span_t *s) {
  uint32_t n = s->npages;
  if (s->prev) s->prev->next = s->next;
  else ph_runs[n] = s->next;
  if (s->next) s->next->prev = s->prev;
  if (!ph_runs[n]) ph_nonempty[n / 64] &= ~((uint64_t)1 << (n % 64));
  if (s->dirty) {
    if (s->dirty_prev) s->dirty_prev->dirty_next = s->dirty_next;
    else ph_dirty_head = s->dirty_next;
    if (s->dirty_next) s->dirty_next->dirty_prev = s->dirty_prev;
    else ph_dirty_tail = s->dirty_prev;
  }
}

static span_t *run_find(uint32_t n) {
  for (uint32_t w = n / 64; w < sizeof ph_nonempty / 8; w++) {
    uint64_t bits = ph_nonempty[w];
    if (w == n / 64) bits &= ~(uint64_t)0 << (n % 64);
    if (bits) return ph_runs[w * 64 + (uint32_t)__builtin_ctzl(bits)];
  }
  return NULL;
}

static inline segment_t *seg_of_span(const span_t *s) {
  return (segment_t *)((uintptr_t)s & ~(uintptr_t)SEG_MASK);
}
static inline uint32_t span_index(const span_t *s) {
  return (uint32_t)(s - seg_of_span(s)->spans);
}

static void run_free(segment_t *seg, uint32_t i, uint32_t n, bool dirty, uint32_t now);
static void segment_unmap(segment_t *seg);

/* Make pages [i, i+n) of seg a free run and list it; a dirty run is dated
 * `now` for the decay. */
static span_t *run_make(segment_t *seg, uint32_t i, uint32_t n, bool dirty, uint32_t now) {
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
static uint32_t seg_usable(const segment_t *seg) { return seg->end - ph_guard - ph_first; }

/* A segment of the break heap starts with this many pages mapped and at
 * least doubles as it grows: a small program takes little address space. */
#define SEG_FIRST_PAGES 64

/* The extent (mapped pages) to ask for a segment that must give `pages`:
 * at least what holds them with the header and guards. */
static uint32_t seg_extent_for(uint32_t pages) { return ph_first + pages + ph_guard; }

/* A new segment from the break heap (short, growing with the break), else
 * from mmap: a whole one, or under an address-space limit the largest that
 * fits, down to `pages` pages. Its first `end` pages are mapped. */
static segment_t *segment_map(uint32_t pages) {
  uint32_t least = seg_extent_for(pages);
  if (ph_use_sbrk) {
    char *cur = os_sbrk_current();
    if (cur) {
      char *base = (char *)align_up((uintptr_t)cur, SEG_SIZE);
      uint32_t end = least > SEG_FIRST_PAGES ? least : SEG_FIRST_PAGES;
      if ((uintptr_t)base + SEG_SIZE <= ((uintptr_t)1 << ADDR_BITS) &&
          os_sbrk_grow(cur, (size_t)(base - cur) + (size_t)end * PAGE_SIZE)) {
        if (base > cur) os_unmap(cur, (size_t)(base - cur));   /* the alignment gap */
        segment_t *seg = (segment_t *)base;
        ph_sbrk_top = base + (size_t)end * PAGE_SIZE;
        seg->from_sbrk = true;
        seg->end = end;
        ph_mapped += (size_t)end * PAGE_SIZE;
        decay_note_growth((size_t)end * PAGE_SIZE);
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
      decay_note_growth((size_t)end * PAGE_SIZE);
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
  segment_t *seg = ph_spare;
  if (seg && seg_usable(seg) >= pages) {
    ph_spare = seg->next;
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
  if (ph_guard &&
      !(os_protect_none((char *)seg + SEG_HEADER_PAGES * PAGE_SIZE, PAGE_SIZE) &&
        os_protect_none((char *)seg + ((size_t)seg->end - 1) * PAGE_SIZE, PAGE_SIZE)))
    fatal("malloc", seg, "mprotect of a guard page failed");
  seg->free_pages = seg_usable(seg);
  seg->growable = false;
  seg->prev = NULL;
  seg->next = ph_segments;
  if (ph_segments) ph_segments->prev = seg;
  ph_segments = seg;
  run_make(seg, ph_first, seg_usable(seg), false, 0);
  segment_growable(seg);
  return seg;
}

/* Under the lock: map more of seg in place so that it can give a run of
 * `pages` (the new pages join its last free run); false when the range
 * after it is taken (seg then leaves the growable list) or no memory. */
static bool segment_grow(segment_t *seg, uint32_t pages) {
  uint32_t last = seg->end - ph_guard - 1;         /* the last usable page */
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
  decay_note_growth(more);
  uint32_t from = seg->end - ph_guard;              /* the old guard page joins */
  if (ph_guard && !(os_protect_rw((char *)seg + (size_t)from * PAGE_SIZE, PAGE_SIZE) &&
                    os_protect_none((char *)seg + ((size_t)end - 1) * PAGE_SIZE, PAGE_SIZE)))
    fatal("malloc", seg, "mprotect of a guard page failed");
  seg->end = end;
  run_free(seg, from, end - ph_guard - from, false, os_now_ms());
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
    for (segment_t **pp = &ph_spare; *pp; pp = &(*pp)->next) {
      segment_t *seg = *pp, *next = seg->next;   /* read before the memory goes */
      size_t bytes = (size_t)seg->end * PAGE_SIZE;
      if (seg->from_sbrk && (char *)seg + bytes == ph_sbrk_top &&
          os_sbrk_shrink(ph_sbrk_top, seg)) {
        *pp = next;
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
  seg->next = ph_spare;
  ph_spare = seg;
}

/* The segment has no allocated page: its one free run goes, and so does
 * the segment. */
static void segment_release(segment_t *seg) {
  run_unlink(&seg->spans[ph_first]);
  if (seg->prev) seg->prev->next = seg->next;
  else ph_segments = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
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
  ASSERT(npages >= 1 && npages <= SEG_PAGES - ph_first - ph_guard);
  lock_acquire(&ph_lock);
  span_t *run = run_find(npages);
  if (!run) run = segment_more(npages);
  if (!run) { lock_release(&ph_lock); return NULL; }
  run_unlink(run);
  segment_t *seg = seg_of_span(run);
  uint32_t i = span_index(run), total = run->npages;
  bool dirty = run->dirty;
  if (!dirty) atomic_add_relaxed(&pageheap_clean_runs, 1);
  if (total > npages) run_make(seg, i + npages, total - npages, dirty, run->dirty_ms);
  seg->free_pages -= npages;
  ph_span_pages += npages;
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
  uint32_t now = os_now_ms(), npages = s->npages;
  lock_acquire(&ph_lock);
  atomic_store_relaxed(&s->owner, NULL);
  s->kind = SPAN_FREE_RUN;
  ph_span_pages -= npages;
  run_free(seg_of_span(s), span_index(s), npages, true, now);   /* s may be gone */
  lock_release(&ph_lock);
  decay_note((size_t)npages * PAGE_SIZE);
}

/* The madvise calls run with the lock released: a batch of runs is taken
 * off the free lists first (kind SPAN_PURGING, their pages out of
 * free_pages, so no allocation, merge or segment release touches them), then
 * put back clean. */
#define PURGE_BATCH 32
/* Under the lock: segments empty for at least `age` ms go back to the OS
 * (keeping them that long saves a release and a refault per burst). */
static size_t release_empty_segments(uint32_t now, uint32_t age, bool *younger) {
  size_t released = 0;
  for (segment_t *seg = ph_segments, *next; seg; seg = next) {
    next = seg->next;
    if (seg->free_pages != seg_usable(seg)) continue;
    if (now - seg->spans[ph_first].dirty_ms < age) { *younger = true; continue; }
    released += (size_t)seg->end * PAGE_SIZE;
    segment_release(seg);
  }
  return released;
}

size_t pageheap_decay(uint32_t now, uint32_t age, bool *younger) {
  size_t purged = 0;
  lock_acquire(&ph_purge_lock);
  lock_acquire(&ph_lock);
  purged += release_empty_segments(now, age, younger);
  lock_release(&ph_lock);
  for (;;) {
    span_t *batch[PURGE_BATCH];
    unsigned nb = 0;
    lock_acquire(&ph_lock);
    for (span_t *r = ph_dirty_head; r && nb < PURGE_BATCH; r = r->dirty_next) {
      if (now - r->dirty_ms < age) { *younger = true; break; }
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
    for (unsigned k = 0; k < nb; k++) {
      os_purge_decayed(batch[k]->start, (size_t)batch[k]->npages * PAGE_SIZE);
      purged += (size_t)batch[k]->npages * PAGE_SIZE;
    }
    lock_acquire(&ph_lock);
    for (unsigned k = 0; k < nb; k++) {      /* run_free adds the pages back */
      batch[k]->kind = SPAN_FREE_RUN;
      run_free(seg_of_span(batch[k]), span_index(batch[k]), batch[k]->npages, false, now);
    }
    lock_release(&ph_lock);
  }
  lock_release(&ph_purge_lock);
  return purged;
}

bool pageheap_trim(void) {
  bool younger = false;
  bool released = pageheap_decay(os_now_ms(), 0, &younger) > 0;
  lock_acquire(&ph_lock);
  size_t before = ph_mapped;
  sbrk_lower_spares();
  for (segment_t **pp = &ph_spare; *pp;) {
    segment_t *seg = *pp;
    if (seg->from_sbrk) { pp = &seg->next; continue; }
    size_t bytes = (size_t)seg->end * PAGE_SIZE;
    *pp = seg->next;
    os_unmap(seg, bytes);
    ph_mapped -= bytes;
    ph_spare_mapped = false;
  }
  released |= ph_mapped != before;
  lock_release(&ph_lock);
  return released;
}

void *pageheap_alloc_arena(void) {
  void *a = os_map_aligned(ARENA_SIZE, ARENA_SIZE, 0);
  if (!a) return NULL;
  if (!segmap_set(a, ARENA_SIZE, SEG_ARENA)) {
    os_unmap(a, ARENA_SIZE);
    return NULL;
  }
  lock_acquire(&ph_lock);
  ph_mapped += ARENA_SIZE;
  lock_release(&ph_lock);
  return a;
}

void pageheap_free_arena(void *arena) {
  segmap_clear(arena, ARENA_SIZE, SEG_ARENA);
  os_unmap(arena, ARENA_SIZE);
  lock_acquire(&ph_lock);
  ph_mapped -= ARENA_SIZE;
  lock_release(&ph_lock);
}

void pageheap_stats(pageheap_stats_t *st) {
  lock_acquire(&ph_lock);
  st->mapped = ph_mapped;
  st->span_bytes = ph_span_pages * PAGE_SIZE;
  st->resident = 0;
  st->dirty_free = 0;
  for (segment_t *seg = ph_segments; seg; seg = seg->next)
    st->resident += os_resident(seg, (size_t)seg->end * PAGE_SIZE);
  for (segment_t *seg = ph_spare; seg; seg = seg->next)
    st->resident += os_resident(seg, (size_t)seg->end * PAGE_SIZE);
  for (uint32_t n = 1; n <= SEG_PAGES; n++)
    for (span_t *r = ph_runs[n]; r; r = r->next)
      if (r->dirty) st->dirty_free += (size_t)n * PAGE_SIZE;
  lock_release(&ph_lock);
}
