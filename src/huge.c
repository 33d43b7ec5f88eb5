/* huge.c - direct mappings.
 *
 * Lock: huge_lock guards the list of live mappings (for statistics); a leaf,
 * held only to link and unlink. */
#include "huge.h"
#include "init.h"
#include "os.h"
#include "segmap.h"

#define HUGE_MAGIC 0x5354524148554745ull   /* "STRAHUGE" */

/* Header at the mapping's start. Invariant: magic == HUGE_MAGIC ^ address
 * of the header, user == header + offset, usable == size - offset. */
typedef struct huge_hdr {
  uint64_t magic;
  size_t size;        /* bytes mapped */
  size_t offset;      /* user block offset: page, alignment or a segment */
  size_t align;
  size_t guard;       /* guard=1: PROT_NONE pages before user and at the end */
  void *user;
  struct huge_hdr *next, *prev;   /* huge_list, under huge_lock */
} huge_hdr_t;

static lock_t huge_lock = LOCK_INIT;
static huge_hdr_t *huge_list;
static uint64_t huge_nmalloc, huge_nfree;     /* under huge_lock */

static void huge_link(huge_hdr_t *h, bool fresh) {
  lock_acquire(&huge_lock);
  h->prev = NULL;
  h->next = huge_list;
  if (huge_list) huge_list->prev = h;
  huge_list = h;
  huge_nmalloc += fresh;
  lock_release(&huge_lock);
}

static void huge_set_size(huge_hdr_t *h, size_t size) {
  lock_acquire(&huge_lock);
  h->size = size;
  lock_release(&huge_lock);
}

static void huge_unlink(huge_hdr_t *h, bool gone) {
  lock_acquire(&huge_lock);
  if (h->prev) h->prev->next = h->next;
  else huge_list = h->next;
  if (h->next) h->next->prev = h->prev;
  huge_nfree += gone;
  lock_release(&huge_lock);
}

/* Every segment the mapping touches is marked, so strata_owns answers for
 * any byte of the block; only the first holds the header. */
static size_t huge_segs(size_t total) { return align_up(total, SEG_SIZE); }

static size_t huge_offset(size_t align, size_t guard) {
  size_t off = align <= OS_PAGE ? OS_PAGE : align <= SEG_SIZE ? align : SEG_SIZE;
  return off < OS_PAGE + guard ? OS_PAGE + guard : off;
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
  *h = (huge_hdr_t){ HUGE_MAGIC ^ (uintptr_t)h, total, off, align, guard, (char *)h + off, NULL, NULL };
  huge_link(h, true);
  segmap_set(h, huge_segs(total), SEG_HUGE);
  return h;
}

void *huge_alloc(size_t size, size_t align) {
  huge_hdr_t *h = huge_map(size, align);
  return h ? h->user : NULL;
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
  h->magic = 0;
  huge_unlink(h, true);
  segmap_clear(h, huge_segs(h->size), SEG_HUGE);   /* before the range is free */
  os_unmap(h, h->size);
  return usable;
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
    if (total < h->size) os_unmap((char *)h + total, h->size - total);
    if (huge_segs(total) < huge_segs(h->size))
      segmap_clear((char *)h + huge_segs(total), huge_segs(h->size) - huge_segs(total), SEG_HUGE);
    huge_set_size(h, total);
    return p;
  }
  if (os_remap(h, h->size, total, h)) {        /* grew in place */
    size_t marked = huge_segs(h->size);
    segmap_set((char *)h + marked, huge_segs(total) - marked, SEG_HUGE);
    huge_set_size(h, total);
    return p;
  }
  /* Move without copying: reserve an aligned range, move the pages there. */
  char *to = h->align <= SEG_SIZE ? os_map_aligned(total, SEG_SIZE, 0)
                                  : os_map_aligned(total, h->align, SEG_SIZE);
  if (!to) return NULL;
  size_t old = h->size;
  huge_hdr_t *from = h;
  huge_unlink(from, false);              /* the header moves */
  /* Clear before the old range is unmapped: a new mapping there may be
   * marked by another thread the moment it is. */
  segmap_clear(from, huge_segs(old), SEG_HUGE);
  if (!os_remap(from, old, total, to)) {
    segmap_set(from, huge_segs(old), SEG_HUGE);
    huge_link(from, false);
    os_unmap(to, total);
    return NULL;
  }
  h = (huge_hdr_t *)to;
  h->magic = HUGE_MAGIC ^ (uintptr_t)h;
  h->size = total;
  h->user = to + h->offset;
  huge_link(h, false);
  segmap_set(h, huge_segs(total), SEG_HUGE);
  return h->user;
}

void huge_stats(huge_stats_t *st) {
  *st = (huge_stats_t){ 0 };
  lock_acquire(&huge_lock);
  st->nmalloc = huge_nmalloc;
  st->nfree = huge_nfree;
  for (huge_hdr_t *h = huge_list; h; h = h->next) {
    st->allocated += h->size - h->offset - h->guard;
    st->mapped += h->size;
    st->resident += os_resident(h, h->size);
  }
  lock_release(&huge_lock);
}

void huge_fork_prepare(void) { lock_acquire(&huge_lock); }
void huge_fork_parent(void) { lock_release(&huge_lock); }
void huge_fork_child(void) { lock_reinit(&huge_lock); }
