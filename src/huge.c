/* huge.c - direct mappings.
 *
 * The huge cache: freed mappings kept for reuse. A program that cycles huge
 * blocks otherwise maps, faults in and unmaps each one. Up to
 * HUGE_CACHE_SLOTS mappings of HUGE_CACHE_BYTES in all (the oldest go first
 * to make room, so that a few big mappings never look like a leak of
 * gigabytes); a malloc (not calloc: they are not zero) takes the smallest
 * that holds it, if at most twice its size; the decay unmaps those freed
 * more than decay_ms ago, strata_collect all of them. A cached mapping is
 * out of the segment map, as if unmapped: freeing its block again is
 * reported as the free of a pointer that is not Strata's.
 *
 * Lock: huge_lock guards the list of live mappings and the cache; held to
 * link, unlink and take, and by the statistics, which ask the kernel which
 * pages are resident (mincore) under it; nothing is mapped or unmapped
 * under it.
 */
#include "huge.h"
#include "backlog.h"
#include "list.h"
#include "lock.h"
#include "options.h"
#include "os.h"
#include "segmap.h"

#define HUGE_MAGIC 0x5354524148554745ull   /* "STRAHUGE" */

/* Header at the mapping's start. Invariant: magic == HUGE_MAGIC ^ address
 * of the header, user == header + offset, usable == size - offset - guard. */
typedef struct huge_hdr {
  uint64_t magic;
  size_t size;        /* bytes mapped */
  size_t offset;      /* user block offset: page, alignment or a segment */
  size_t align;
  size_t guard;       /* guard=1: PROT_NONE pages before user and at the end */
  void *user;
  LIST_LINK(struct huge_hdr) link;   /* huge_list, under huge_lock */
  uint32_t freed_ms;  /* in the cache: when it was freed */
} huge_hdr_t;

static lock_t huge_lock = LOCK_INIT(RANK_HUGE);
static huge_hdr_t *huge_list;
static uint64_t huge_nmalloc, huge_nfree;     /* under huge_lock */

#define HUGE_CACHE_SLOTS 4
#define HUGE_CACHE_BYTES ((size_t)256 << 20)
static huge_hdr_t *huge_cache[HUGE_CACHE_SLOTS];   /* under huge_lock; NULL: empty */

static void huge_link(huge_hdr_t *h, bool fresh) {
  ASSERT(h->magic == (HUGE_MAGIC ^ (uintptr_t)h) && h->user == (char *)h + h->offset);
  lock_acquire(&huge_lock);
  LIST_PUSH(&huge_list, h, link);
  huge_nmalloc += fresh;
  lock_release(&huge_lock);
}

static void huge_set_size(huge_hdr_t *h, size_t size) {
  lock_acquire(&huge_lock);
  h->size = size;
  lock_release(&huge_lock);
}

/* Take h off the live list; `gone` (freed, not moving): its magic goes
 * with it, under the lock, so a listed mapping always carries it. */
static void huge_unlink(huge_hdr_t *h, bool gone) {
  lock_acquire(&huge_lock);
  LIST_REMOVE(&huge_list, h, link);
  huge_nfree += gone;
  if (gone) h->magic = 0;
  lock_release(&huge_lock);
}

/* Every segment the mapping touches is marked, so strata_owns answers for
 * any byte of the block; only the first holds the header. */
static size_t huge_segs(size_t total) { return align_up(total, SEG_SIZE); }

static size_t huge_offset(size_t align, size_t guard) {
  size_t off = align <= OS_PAGE ? OS_PAGE : align <= SEG_SIZE ? align : SEG_SIZE;
  return off < OS_PAGE + guard ? OS_PAGE + guard : off;
}

/* The header of a mapping of `total` bytes (marked in the segment map)
 * whose block starts `off` bytes in; listed live. */
static void huge_start(huge_hdr_t *h, size_t total, size_t off, size_t align, size_t guard) {
  *h = (huge_hdr_t){ .magic = HUGE_MAGIC ^ (uintptr_t)h, .size = total, .offset = off, .align = align,
                     .guard = guard, .user = (char *)h + off };
  huge_link(h, true);
}

static huge_hdr_t *huge_map(size_t size, size_t align) {
  size_t guard = options.guard ? OS_PAGE : 0;
  size_t off = huge_offset(align, guard);
  if (size > PTRDIFF_MAX - off - 2 * OS_PAGE) return NULL;
  size_t total = align_up(off + size, OS_PAGE) + guard;
  huge_hdr_t *h = align <= SEG_SIZE ? os_map_aligned(total, SEG_SIZE, 0)
                                    : os_map_aligned(total, align, SEG_SIZE);
  if (!h) return NULL;
  if (guard && !(os_protect_none((char *)h + off - guard, guard) &&
                 os_protect_none((char *)h + total - guard, guard))) {
    os_unmap(h, total);
    return NULL;
  }
  if (!segmap_set(h, huge_segs(total), SEG_HUGE)) {
    os_unmap(h, total);
    return NULL;
  }
  huge_start(h, total, off, align, guard);
  return h;
}

/* The smallest cached mapping that holds `total` bytes with its block at
 * offset off, and at most twice that, taken out; NULL if none. */
static huge_hdr_t *huge_cache_take(size_t total, size_t off) {
  int best = -1;
  lock_acquire(&huge_lock);
  for (int k = 0; k < HUGE_CACHE_SLOTS; k++) {
    huge_hdr_t *h = huge_cache[k];
    if (h && h->offset == off && h->size >= total && h->size / 2 <= total &&
        (best < 0 || h->size < huge_cache[best]->size))
      best = k;
  }
  huge_hdr_t *h = best < 0 ? NULL : huge_cache[best];
  if (h) huge_cache[best] = NULL;
  lock_release(&huge_lock);
  return h;
}

void *huge_alloc(size_t size, size_t align, bool zero) {
  ASSERT(is_pow2(align));
  size_t off = huge_offset(align, 0), total = align_up(off + size, OS_PAGE);
  huge_hdr_t *h = NULL;
  if (!zero && !options.guard && align <= SEG_SIZE && size <= HUGE_CACHE_BYTES) h = huge_cache_take(total, off);
  if (!h) {
    h = huge_map(size, align);
    return h ? h->user : NULL;
  }
  /* The whole mapping is the block (usable beyond the request), but the
   * pages past the request that its last user left resident go back: the
   * mapping stays as large for a later request as large. */
  if (total < h->size) os_purge((char *)h + total, h->size - total);
  if (!segmap_set(h, huge_segs(h->size), SEG_HUGE)) {   /* its leaf is mapped: never */
    os_unmap(h, h->size);
    h = huge_map(size, align);
    return h ? h->user : NULL;
  }
  huge_start(h, h->size, off, align, 0);
  return h->user;
}

static void huge_unmap_all(huge_hdr_t **gone, int n) {
  while (n) {
    huge_hdr_t *h = gone[--n];
    os_unmap(h, h->size);
  }
}

/* Keep the freed mapping h (out of the segment map) in the cache, making
 * room by unmapping the oldest, or unmap h if it is not to be cached. */
static void huge_cache_put(huge_hdr_t *h) {
  ASSERT(h->magic == 0 && segmap_kind((char *)h + 1) == SEG_NONE);
  if (h->guard || h->align > SEG_SIZE || h->size > HUGE_CACHE_BYTES || !options.decay_ms) {
    os_unmap(h, h->size);
    return;
  }
  h->freed_ms = os_now_ms();
  size_t size = h->size;              /* h is not ours once the lock is released */
  huge_hdr_t *gone[HUGE_CACHE_SLOTS];
  int n = 0;
  lock_acquire(&huge_lock);
  for (;;) {
    int slot = -1, oldest = -1;
    size_t bytes = h->size;
    for (int k = 0; k < HUGE_CACHE_SLOTS; k++) {
      huge_hdr_t *c = huge_cache[k];
      if (!c) { slot = k; continue; }
      bytes += c->size;
      if (oldest < 0 || (int32_t)(c->freed_ms - huge_cache[oldest]->freed_ms) < 0) oldest = k;
    }
    if (slot >= 0 && bytes <= HUGE_CACHE_BYTES) {
      huge_cache[slot] = h;
      break;
    }
    gone[n++] = huge_cache[oldest];     /* h fits once every other is gone */
    huge_cache[oldest] = NULL;
  }
  lock_release(&huge_lock);
  huge_unmap_all(gone, n);
  backlog_note(size);
}

/* Take the cached mappings freed at least `age` ms before `now` (all of
 * them with age 0, as decay=0 caches none) and unmap them; true when some
 * must wait. */
static bool huge_cache_drop(uint32_t now, uint32_t age) {
  huge_hdr_t *gone[HUGE_CACHE_SLOTS];
  int n = 0;
  bool waiting = false;
  lock_acquire(&huge_lock);
  for (int k = 0; k < HUGE_CACHE_SLOTS; k++) {
    huge_hdr_t *h = huge_cache[k];
    if (!h) continue;
    if (age && os_ms_since(now, h->freed_ms) < age) { waiting = true; continue; }
    gone[n++] = h;
    huge_cache[k] = NULL;
  }
  lock_release(&huge_lock);
  huge_unmap_all(gone, n);
  return waiting;
}

static void huge_decay(uint32_t now, uint32_t age, bool *younger) {
  if (huge_cache_drop(now, age)) *younger = true;
}

static bool huge_trim(void) {
  size_t returned = atomic_load_relaxed(&os_returned);
  huge_cache_drop(0, 0);
  return atomic_load_relaxed(&os_returned) != returned;
}

static huge_hdr_t *huge_header(const void *p, const char *call) {
  huge_hdr_t *h = (huge_hdr_t *)(((uintptr_t)p - 1) & ~(uintptr_t)SEG_MASK);
  CHECK(h->magic == (HUGE_MAGIC ^ (uintptr_t)h) && h->user == p, call, p,
        MSG_NOT_BLOCK);
  return h;
}

static size_t huge_hdr_usable(const huge_hdr_t *h) { return h->size - h->offset - h->guard; }

size_t huge_free(void *p, const char *call) {
  huge_hdr_t *h = huge_header(p, call);
  size_t usable = huge_hdr_usable(h);
  huge_unlink(h, true);
  segmap_clear(h, huge_segs(h->size), SEG_HUGE);   /* before the range is free */
  huge_cache_put(h);
  return usable;
}

bool huge_owns(const void *p) {
  bool owns = false;
  lock_acquire(&huge_lock);
  for (huge_hdr_t *h = huge_list; h && !owns; h = h->link.next)
    owns = (uintptr_t)p - 1 - (uintptr_t)h < h->size;
  lock_release(&huge_lock);
  return owns;
}

size_t huge_usable(const void *p, const char *call) {
  return huge_hdr_usable(huge_header(p, call));
}

void *huge_realloc(void *p, size_t size) {
  huge_hdr_t *h = huge_header(p, CALL_REALLOC);
  if (h->guard) return NULL;                   /* moved by the caller, guards and all */
  if (size > PTRDIFF_MAX - h->offset - OS_PAGE) return NULL;
  size_t total = align_up(h->offset + size, OS_PAGE);
  if (total <= h->size) {                      /* shrink: unmap the tail */
    /* The size first (a listed mapping's segments are all marked), then
     * the marks, then the pages: once unmapped, the range may be mapped
     * and marked by another thread at once. */
    size_t old = h->size;
    huge_set_size(h, total);
    if (huge_segs(total) < huge_segs(old))
      segmap_clear((char *)h + huge_segs(total), huge_segs(old) - huge_segs(total), SEG_HUGE);
    if (total < old) os_unmap((char *)h + total, old - total);
    return p;
  }
  if (os_remap(h, h->size, total, h)) {        /* grew in place */
    size_t marked = huge_segs(h->size);
    if (segmap_set((char *)h + marked, huge_segs(total) - marked, SEG_HUGE)) {
      huge_set_size(h, total);
      return p;
    }
    os_remap(h, total, h->size, h);            /* no leaf for the new part: back */
    return NULL;
  }
  /* Move without copying: reserve an aligned range, marked as ours (its
   * leaves mapped) before anything moves, and move the pages there. */
  char *to = h->align <= SEG_SIZE ? os_map_aligned(total, SEG_SIZE, 0)
                                  : os_map_aligned(total, h->align, SEG_SIZE);
  if (!to) return NULL;
  if (!segmap_set(to, huge_segs(total), SEG_HUGE)) {
    os_unmap(to, total);
    return NULL;
  }
  size_t old = h->size;
  huge_hdr_t *from = h;
  huge_unlink(from, false);              /* the header moves */
  /* Clear before the old range is unmapped: a new mapping there may be
   * marked by another thread the moment it is. */
  segmap_clear(from, huge_segs(old), SEG_HUGE);
  if (!os_remap(from, old, total, to)) {
    segmap_clear(to, huge_segs(total), SEG_HUGE);
    segmap_set(from, huge_segs(old), SEG_HUGE);   /* its leaves are mapped */
    huge_link(from, false);
    os_unmap(to, total);
    return NULL;
  }
  h = (huge_hdr_t *)to;
  h->magic = HUGE_MAGIC ^ (uintptr_t)h;
  h->size = total;
  h->user = to + h->offset;
  huge_link(h, false);
  return h->user;
}

/* Live mappings are active; cached ones are mapped, and their resident
 * pages the decay's backlog. */
static void huge_stats(tier_stats_t *st) {
  lock_acquire(&huge_lock);
  st->nmalloc += huge_nmalloc;
  st->nfree += huge_nfree;
  for (huge_hdr_t *h = huge_list; h; h = h->link.next) {
    st->allocated += h->size - h->offset - h->guard;
    st->active += h->size;
    st->mapped += h->size;
    st->resident += os_resident(h, h->size);
  }
  for (int k = 0; k < HUGE_CACHE_SLOTS; k++)
    if (huge_cache[k]) {
      size_t resident = os_resident(huge_cache[k], huge_cache[k]->size);
      st->mapped += huge_cache[k]->size;
      st->resident += resident;
      st->dirty += resident;
    }
  lock_release(&huge_lock);
}

bool huge_valid(void) {
  bool ok = true;
  lock_acquire(&huge_lock);
  for (huge_hdr_t *h = huge_list; h && ok; h = h->link.next)
    ok = h->magic == (HUGE_MAGIC ^ (uintptr_t)h) && h->user == (char *)h + h->offset &&
         h->offset + h->guard < h->size && (!h->link.next || h->link.next->link.prev == h) &&
         segmap_kind((char *)h + 1) == SEG_HUGE && segmap_kind((char *)h + h->size) == SEG_HUGE;
  size_t cached = 0;
  for (int k = 0; k < HUGE_CACHE_SLOTS; k++)
    if (huge_cache[k]) cached += huge_cache[k]->size;
  lock_release(&huge_lock);
  return ok && cached <= HUGE_CACHE_BYTES;
}

const tier_t huge_tier = {
  .name = "huge",
  .decay = huge_decay,
  .trim = huge_trim,
  .locks = { &huge_lock },
  .stats = huge_stats,
  .valid = huge_valid,
};
