/* huge.c - direct mappings. */
#include "huge.h"
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
  void *user;
} huge_hdr_t;

/* Every segment the mapping touches is marked, so strata_owns answers for
 * any byte of the block; only the first holds the header. */
static size_t huge_segs(size_t total) { return align_up(total, SEG_SIZE); }

static size_t huge_offset(size_t align) {
  return align <= OS_PAGE ? OS_PAGE : align <= SEG_SIZE ? align : SEG_SIZE;
}

static huge_hdr_t *huge_map(size_t size, size_t align) {
  size_t off = huge_offset(align);
  if (size > PTRDIFF_MAX - off - OS_PAGE) return NULL;
  size_t total = align_up(off + size, OS_PAGE);
  huge_hdr_t *h = align <= SEG_SIZE ? os_map_aligned(total, SEG_SIZE, 0)
                                    : os_map_aligned(total, align, SEG_SIZE);
  if (!h) return NULL;
  *h = (huge_hdr_t){ HUGE_MAGIC ^ (uintptr_t)h, total, off, align, (char *)h + off };
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

void huge_free(void *p, const char *call) {
  huge_hdr_t *h = huge_header(p, call);
  h->magic = 0;
  segmap_clear(h, huge_segs(h->size), SEG_HUGE);   /* before the range is free */
  os_unmap(h, h->size);
}

size_t huge_usable(const void *p, const char *call) {
  huge_hdr_t *h = huge_header(p, call);
  return h->size - h->offset;
}

void *huge_realloc(void *p, size_t size) {
  huge_hdr_t *h = huge_header(p, CALL_REALLOC);
  if (size > PTRDIFF_MAX - h->offset - OS_PAGE) return NULL;
  size_t total = align_up(h->offset + size, OS_PAGE);
  if (total <= h->size) {                      /* shrink: unmap the tail */
    if (total < h->size) os_unmap((char *)h + total, h->size - total);
    if (huge_segs(total) < huge_segs(h->size))
      segmap_clear((char *)h + huge_segs(total), huge_segs(h->size) - huge_segs(total), SEG_HUGE);
    h->size = total;
    return p;
  }
  if (os_remap(h, h->size, total, h)) {        /* grew in place */
    segmap_set(h, huge_segs(total), SEG_HUGE);
    h->size = total;
    return p;
  }
  /* Move without copying: reserve an aligned range, move the pages there. */
  char *to = h->align <= SEG_SIZE ? os_map_aligned(total, SEG_SIZE, 0)
                                  : os_map_aligned(total, h->align, SEG_SIZE);
  if (!to) return NULL;
  size_t old = h->size;
  huge_hdr_t *from = h;
  /* Clear before the old range is unmapped: a new mapping there may be
   * marked by another thread the moment it is. */
  segmap_clear(from, huge_segs(old), SEG_HUGE);
  if (!os_remap(from, old, total, to)) {
    segmap_set(from, huge_segs(old), SEG_HUGE);
    os_unmap(to, total);
    return NULL;
  }
  h = (huge_hdr_t *)to;
  h->magic = HUGE_MAGIC ^ (uintptr_t)h;
  h->size = total;
  h->user = to + h->offset;
  segmap_set(h, huge_segs(total), SEG_HUGE);
  return h->user;
}
