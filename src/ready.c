/* ready.c - the remote frees' ready lists (ready.h).
 *
 * A span queued by remote frees is placed second in its bin (unparked if
 * parked), right behind the span refills take from, and drained by its
 * owner; one that this empties goes to the spares like any emptied span.
 * A span whose blocks all came back from other threads is otherwise seen
 * only when the refills reach it, and newer spans can keep the front for
 * ever: a thread that hands out blocks that others free, and adopts the
 * spans of exited threads, would grow without bound. A span that is not
 * (any more) h's may be released once QUEUED is clear: its owner is read
 * first.
 *
 * A refill takes the queued spans of its class only every READY_REFILLS
 * refills of the class while some wait (heap_tick takes those of the
 * classes with no refill since its last round): a span stays queued
 * meanwhile, so the remote frees pile up on it without queueing it again,
 * and the owner drains it in one go, often whole (it then goes to the
 * spares and comes back as a fresh span). Drained at every refill, a
 * producer's spans would be drained a few blocks at a time while its
 * consumer frees into them, each drain arming the next queueing.
 */
#include "ready.h"
#include "bcache.h"
#include "bin.h"

#define READY_REFILLS 8

NOINLINE void ready_queue(span_t *s) {
  ASSERT(s->kind == SPAN_SMALL && (atomic_load_relaxed(&s->xfree) & XF_QUEUED));
  heap_t *owner = atomic_load_acquire(&s->owner);   /* may have changed */
  if (!owner) {                     /* abandoned: adoption drains it anyway */
    atomic_fetch_and_explicit(&s->xfree, ~(uintptr_t)XF_QUEUED, memory_order_release);
    return;
  }
  span_t *_Atomic *ready = &owner->ready[s->cls];
  span_t *head = atomic_load_relaxed(ready);
  do s->qnext = head;
  while (!atomic_cas_weak_release(ready, &head, s));
}

static void ready_take_class(heap_t *h, unsigned cls) {
  h->ready_wait[cls] = 0;
  span_t *s = atomic_exchange_acq_rel(&h->ready[cls], NULL);
  while (s) {
    span_t *next = s->qnext;
    bool mine = atomic_load_relaxed(&s->owner) == h;
    uintptr_t x = atomic_fetch_and_explicit(&s->xfree, ~(uintptr_t)XF_QUEUED, memory_order_acq_rel);
    if (mine) {
      ASSERT(s->cls == cls && s->kind == SPAN_SMALL);
      bin_t *bin = &h->bins[cls];
      if (x & XF_FULL) bin_unpark(bin, s);
      else bin_to_front(bin, s);
      span_drain_remote(s, h->free[cls], bcache_max(h, cls));
      bin_span_freed(h, s);
    }
    s = next;
  }
}

void ready_at_refill(heap_t *h, unsigned cls) {
  ASSERT(cls < CLASS_COUNT);
  if (atomic_load_relaxed(&h->ready[cls]) && ++h->ready_wait[cls] >= READY_REFILLS)
    ready_take_class(h, cls);
}

void ready_take(heap_t *h, uint64_t mask) {
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    if ((mask >> c & 1) && atomic_load_relaxed(&h->ready[c])) ready_take_class(h, c);
}
