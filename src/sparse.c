/* sparse.c - sparse spans (sparse.h).
 *
 * A program that frees most of its blocks at random keeps a few in nearly
 * every span, and the spans' pages would stay resident until they empty.
 * So a span that has stayed sparse for the decay time gives back its pages
 * that hold only free blocks. The owner does it (only it may touch the
 * span's free list), from its heap tick, at most once per half decay
 * period; the purge thread's sweep does it for the spans of exited threads
 * (abandon.c; the abandoned lock makes it their owner). A span that is
 * refilled meanwhile is not sparse any more, so a workload whose spans swing
 * around the mark does not purge and refault their pages at every
 * crossing.
 *
 * A span is marked when frees make it sparse and unmarked by its purge, so
 * none is walked twice for the same frees. Its clock (sparse_ms) starts at
 * the owner's next look, so that no free reads the clock.
 */
#include "sparse.h"
#include "options.h"
#include "os.h"

/* sparse_ms of a span that became sparse since the last look at it. */
#define SPARSE_NEW 1

/* Spans of more blocks are never purged, nor any in checked mode. */
static bool sparse_never(const span_t *s) { return s->count > SPAN_PURGE_MAX_BLOCKS || span_checked_mode; }

bool sparse_mark(span_t *s) {
  ASSERT(s->kind == SPAN_SMALL && sparse_is(s));
  if (sparse_never(s)) return false;
  s->sparse_ms = SPARSE_NEW;
  return true;
}

bool sparse_due(span_t *s, uint32_t now, uint32_t age) {
  ASSERT(s->kind == SPAN_SMALL);
  if (!s->sparse_ms) return false;
  if (!sparse_is(s)) {
    s->sparse_ms = 0;
    return false;
  }
  if (s->sparse_ms == SPARSE_NEW) s->sparse_ms = (now - 1) | 1;   /* odd, not after now */
  if (now - s->sparse_ms < age) return false;
  s->sparse_ms = 0;
  return true;
}

void sparse_purge(heap_t *h, sparse_which_t which) {
  uint32_t now = os_now_ms();
  if (which == SPARSE_DUE && now - h->sparse_scan_ms < options.decay_ms / 2) return;
  h->sparse_scan_ms = now;
  h->sparse_waiting = h->sparse_walked = 0;
  for (unsigned c = 0; c < CLASS_COUNT; c++)
    for (span_t *s = h->bins[c].spans; s; s = s->link.next) {
      ASSERT(atomic_load_relaxed(&s->owner) == h && s->cls == c);
      if (sparse_never(s)) break;           /* the whole class */
      h->sparse_walked++;
      bool marked = which == SPARSE_MARKED && s->sparse_ms && sparse_is(s);
      if (sparse_due(s, now, options.decay_ms) || marked || which == SPARSE_ALL) {
        s->sparse_ms = 0;
        span_purge_free_pages(s);
      }
      h->sparse_waiting += s->sparse_ms != 0;
    }
}

/* Relief: h's resident memory grows, so before it grows further h gives
 * back the free pages of its sparse spans, whatever their age: a program
 * that fills, frees most of it and fills again with other sizes would
 * otherwise reach its peak before any of them was due. Only while some
 * span is marked, and at most once per eighth of the decay time unless
 * SPARSE_RELIEF_SPANS and an eighth of the last walk's length were marked
 * since: a thread that frees and grows at once walks its bins at most once
 * per eight marks, and one that frees many spans' worth and refills at once
 * (faster than the clock) is relieved all the same. */
#define SPARSE_RELIEF_SPANS 64

NOINLINE void sparse_relieve(heap_t *h) {
  if (!h->sparse_waiting) return;
  uint32_t now = os_now_ms();
  if (h->sparse_waiting < SPARSE_RELIEF_SPANS + h->sparse_walked / 8 &&
      now - h->relieved_ms < options.decay_ms / 8)
    return;
  h->relieved_ms = now;
  sparse_purge(h, SPARSE_MARKED);
}
