/* spare.c - a thread heap's spare spans (spare.h).
 *
 * A span that becomes empty on its owner's free leaves its bin for the
 * spares, so a thread that frees and reallocates a batch neither carves
 * again nor takes the page-heap lock per span. They have their own lock
 * (uncontended: the owner takes it on slow paths only), so the purge thread
 * can give back what stayed there for the decay time, and malloc_trim every
 * heap's spares. Spare spans keep their owner; dirty_ms is when they came.
 *
 * The bound adapts: a refill that finds no spare of its class after the
 * spares overflowed doubles it (up to 64 MiB), so a thread that frees and
 * reallocates batches bigger than 4 MiB stops taking the page-heap lock
 * twice per span; each decay that finds spans unused for the decay time
 * halves it again. Doubling at every overflow would fill it in a thread
 * that frees more spans than it reuses (the blocks of exited threads).
 */
#include "spare.h"
#include "backlog.h"
#include "os.h"
#include "pageheap.h"

void spare_put(heap_t *h, span_t *s) {
  ASSERT(atomic_load_relaxed(&s->owner) == h && s->used == 0 && span_releasable(s));
  size_t bytes = (size_t)s->npages * PAGE_SIZE;   /* once a spare, s is the decay's */
  lock_acquire(&h->spare_lock);
  bool keep = h->spare_pages + s->npages <= (uint32_t)SPARE_PAGES << h->spare_shift;
  if (!keep) h->spare_overflowed = true;
  if (keep) {
    s->dirty_ms = os_now_ms();
    h->spare_pages += s->npages;
    LIST_PUSH(&h->spare[s->cls], s, link);
  }
  /* Past the first SPARE_PAGES, the spares count as memory for the decay to
   * return (and for starting the purge thread); a small program's churn of
   * spans does not. */
  bool note = keep && h->spare_pages > SPARE_PAGES;
  lock_release(&h->spare_lock);
  if (!keep) pageheap_free_span(s);
  else if (note) backlog_note(bytes);
}

/* Under spare_lock. */
static void spare_unlink(heap_t *h, span_t *s) {
  ASSERT(lock_held(RANK_SPARE) && h->spare_pages >= s->npages && atomic_load_relaxed(&s->owner) == h);
  LIST_REMOVE(&h->spare[s->cls], s, link);
  h->spare_pages -= s->npages;
}

span_t *spare_take(heap_t *h, unsigned cls) {
  lock_acquire(&h->spare_lock);
  span_t *s = h->spare[cls];
  if (s) {
    spare_unlink(h, s);
  } else if (h->spare_overflowed) {       /* ran out after an overflow */
    if (h->spare_shift < SPARE_SHIFT_MAX) h->spare_shift++;
    h->spare_overflowed = false;
  }
  lock_release(&h->spare_lock);
  ASSERT(!s || (s->used == 0 && s->cls == cls));
  return s;
}

void spare_decay(heap_t *h, uint32_t now, uint32_t age, bool *younger) {
  bool gave = false;
  lock_acquire(&h->spare_lock);
  ASSERT(h->spare_shift <= SPARE_SHIFT_MAX);
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    for (span_t *s = h->spare[c], *next; s; s = next) {
      next = s->link.next;
      if (os_ms_since(now, s->dirty_ms) < age) { *younger = true; continue; }
      spare_unlink(h, s);
      pageheap_free_span(s);
      gave = true;
    }
  if (gave && h->spare_shift) h->spare_shift--;
  lock_release(&h->spare_lock);
}

void spare_release(heap_t *h) {
  bool younger = false;
  spare_decay(h, 0, 0, &younger);
  lock_acquire(&h->spare_lock);       /* the purge thread may be in spare_decay */
  h->spare_shift = 0;
  h->spare_overflowed = false;
  lock_release(&h->spare_lock);
}

