/* abandon.c - spans of exited threads (abandon.h).
 *
 * A thread that takes over the blocks of one that exited (larson) adopts
 * each span at its first free into it: otherwise it pushes every free
 * remotely, and refills from spans that give one block or two.
 *
 * Lock: abandoned_lock guards the lists and span.abandoned; whoever holds
 * it owns the abandoned spans (the sweep drains and purges them).
 */
#include "abandon.h"
#include "backlog.h"
#include "bin.h"
#include "pageheap.h"
#include "sparse.h"

lock_t abandoned_lock = LOCK_INIT(RANK_ABANDONED);
static span_t *abandoned[CLASS_COUNT];     /* link; span.abandoned */

/* Under abandoned_lock. */
static void abandon_unlink(span_t *s) {
  ASSERT(s->abandoned && atomic_load_relaxed(&s->owner) == NULL);
  LIST_REMOVE(&abandoned[s->cls], s, link);
  s->abandoned = false;
}

void abandon_span(span_t *s) {
  ASSERT(s->kind == SPAN_SMALL && !s->abandoned);
  atomic_fetch_and_explicit(&s->xfree, ~(uintptr_t)XF_FULL, memory_order_relaxed);
  span_drain_remote(s, NULL, 0);
  if (span_releasable(s)) {
    pageheap_free_span(s);
    return;
  }
  /* A sparse span's free pages are for the purge thread's sweep: wake it. */
  if (sparse_is(s) && (s->sparse_ms || sparse_mark(s)))
    backlog_note((size_t)(s->count - s->used) * s->block_size);
  /* Ownerless and abandoned at once, under the lock: a free that sees no
   * owner finds the span abandoned (abandon_free, abandon_adopt_span). */
  lock_acquire(&abandoned_lock);
  atomic_store_release(&s->owner, NULL);
  LIST_PUSH(&abandoned[s->cls], s, link);
  s->abandoned = true;
  lock_release(&abandoned_lock);
}

span_t *abandon_adopt(heap_t *h, unsigned cls) {
  ASSERT(cls < CLASS_COUNT && h != &heap_empty);
  lock_acquire(&abandoned_lock);
  span_t *s = abandoned[cls];
  if (s) abandon_unlink(s);
  lock_release(&abandoned_lock);
  if (s) {
    atomic_store_release(&s->owner, h);
    h->sparse_waiting += s->sparse_ms != 0;
  }
  return s;
}

bool abandon_adopt_span(heap_t *h, span_t *s) {
  ASSERT(h != &heap_empty && s->kind == SPAN_SMALL);
  lock_acquire(&abandoned_lock);
  bool ok = s->abandoned;
  if (ok) abandon_unlink(s);
  lock_release(&abandoned_lock);
  if (!ok) return false;
  atomic_store_release(&s->owner, h);
  LIST_INSERT_SECOND(&h->bins[s->cls].spans, s, link);
  h->sparse_waiting += s->sparse_ms != 0;
  return true;
}

bool abandon_free(span_t *s, block_t *b, const char *call) {
  ASSERT(s->kind == SPAN_SMALL && span_is_block_start(s, b));
  lock_acquire(&abandoned_lock);
  bool ok = s->abandoned;
  if (ok) {
    span_drain_remote(s, NULL, 0);          /* the lock makes us its owner */
    /* A block never carved, or a span with nothing out, is a free the
     * span cannot take: counted, it would give the span back while a block
     * is live. */
    CHECK((size_t)((char *)b - s->start) < (size_t)s->carved * s->block_size && s->used != 0, call, b,
          MSG_NOT_BLOCK);
    if (unlikely(s->purged) && span_block_purged(s, b)) fatal(call, b, "double free");
    if (block_looks_free(b, span_free_key)) span_check_not_on(s->local_free, s->count, b, call);
    block_set_next(b, s->local_free);
    s->local_free = b;
    s->used--;
    if (span_releasable(s)) {
      abandon_unlink(s);
      pageheap_free_span(s);
    } else if (sparse_is(s) && !s->sparse_ms && sparse_mark(s)) {
      backlog_note((size_t)(s->count - s->used) * s->block_size);
    }
  }
  lock_release(&abandoned_lock);
  return ok;
}

bool abandon_sweep(uint32_t now, uint32_t age) {
  bool waiting = false;
  lock_acquire(&abandoned_lock);
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    for (span_t *s = abandoned[c], *next; s; s = next) {
      next = s->link.next;
      ASSERT(s->abandoned && s->cls == c && atomic_load_relaxed(&s->owner) == NULL);
      uint32_t drained = span_drain_remote(s, NULL, 0);   /* the lock makes us its owner */
      if (span_releasable(s)) {
        abandon_unlink(s);
        pageheap_free_span(s);
        continue;
      }
      if (drained && sparse_is(s) && !s->sparse_ms) sparse_mark(s);
      if (sparse_due(s, now, age)) span_purge_free_pages(s);   /* the exited owner's last blocks */
      waiting |= s->sparse_ms != 0;
    }
  lock_release(&abandoned_lock);
  return waiting;
}

