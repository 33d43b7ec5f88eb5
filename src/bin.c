/* bin.c - a class's spans in a thread heap (bin.h).
 *
 * A span with nothing to hand out leaves `spans` for `full` (parking), so
 * refills never walk it; the owner unparks it when a free gives it a block
 * back, or when it takes it from its ready list (a remote free queued it).
 */
#include "bin.h"
#include "spare.h"
#include "sparse.h"

void bin_park(bin_t *bin, span_t *s) {
  ASSERT(atomic_load_relaxed(&s->owner) != NULL && !(atomic_load_relaxed(&s->xfree) & XF_FULL));
  uintptr_t x = atomic_load_relaxed(&s->xfree);
  do if (xf_list(x)) return;
  while (!atomic_compare_exchange_weak_explicit(&s->xfree, &x, x | XF_FULL,
                                                memory_order_relaxed, memory_order_relaxed));
  LIST_REMOVE(&bin->spans, s, link);
  LIST_PUSH(&bin->full, s, link);
}

NOINLINE void bin_unpark(bin_t *bin, span_t *s) {
  LIST_REMOVE(&bin->full, s, link);
  LIST_INSERT_SECOND(&bin->spans, s, link);
  atomic_fetch_and_explicit(&s->xfree, ~(uintptr_t)XF_FULL, memory_order_relaxed);
}

void bin_to_front(bin_t *bin, span_t *s) {
  ASSERT(!(atomic_load_relaxed(&s->xfree) & XF_FULL) && bin->spans != NULL);
  if (bin->spans == s) return;
  LIST_REMOVE(&bin->spans, s, link);
  LIST_INSERT_SECOND(&bin->spans, s, link);
}

/* s emptied: to the spare spans, unless it is its bin's only span: a thread
 * that allocates and frees a few blocks of a class in turn would otherwise
 * move that span to the spares and back (two locks and a clock read) once
 * per span's worth of blocks. So a thread keeps at most one empty span per
 * class until it exits or calls strata_collect. Out of line, so that
 * bin_give_list saves no register. */
static NOINLINE void bin_span_emptied(heap_t *h, span_t *s) {
  ASSERT(s->used == 0 && s->sparse_ms == 0);
  if (!span_releasable(s)) return;
  bin_t *bin = &h->bins[s->cls];
  if (bin->spans == s && !s->link.next) return;
  LIST_REMOVE(&bin->spans, s, link);
  spare_put(h, s);
}

void bin_span_freed(heap_t *h, span_t *s) {
  ASSERT(atomic_load_relaxed(&s->owner) == h && s->used <= s->carved);
  if (unlikely(s->used == 0)) {
    s->sparse_ms = 0;                     /* its pages are the spares' now */
    bin_span_emptied(h, s);
  } else if (unlikely(sparse_is(s) && !s->sparse_ms)) {
    h->sparse_waiting += sparse_mark(s);
  }
}

void bin_give_list(heap_t *h, span_t *s, block_t *first, block_t *last, uint32_t n) {
  ASSERT(atomic_load_relaxed(&s->owner) == h && n <= s->used);
  if (unlikely(atomic_load_relaxed(&s->xfree) & XF_FULL)) bin_unpark(&h->bins[s->cls], s);
  block_encode(last, s->local_free, span_secret);
  last->key = span_free_key;
  s->local_free = first;
  s->used -= n;
  bin_span_freed(h, s);
}
