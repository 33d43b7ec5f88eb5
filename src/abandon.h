/* abandon.h - spans of exited threads: at thread exit a heap's spans that
 * still hold blocks go to a global list per class (owner NULL); a live
 * thread adopts them, at a refill or at its first free into one; the purge
 * driver's sweep gives back those that became empty and purges the free
 * pages of the sparse ones. A thread that frees into an abandoned span but
 * allocates nothing of its class frees into it in place instead. */
#ifndef STRATA_ABANDON_H
#define STRATA_ABANDON_H

#include "heap_types.h"

/* At thread exit: s (drained of its parking) goes to the page heap when
 * nothing of it is out, else to the abandoned list. */
void abandon_span(span_t *s);
/* An abandoned span of class cls for h's refill, owned by h, on no list;
 * NULL when there is none. */
span_t *abandon_adopt(heap_t *h, unsigned cls);
/* A free into s, an abandoned span: h adopts it (onto its bin), so this and
 * the next frees into it are the owner's. False when s is not (or no
 * longer) abandoned. */
bool abandon_adopt_span(heap_t *h, span_t *s);
/* A free into s by a thread that does not adopt it (it has no span of the
 * class): checked as the owner's free, under the lock that owns the
 * abandoned spans, and the span goes back to the page heap at once when
 * this was its last block. False when s is not (or no longer) abandoned. */
bool abandon_free(span_t *s, block_t *b, const char *call);
/* Give back every abandoned span that has become empty, and purge the free
 * pages of those sparse for `age` ms at `now` (0: every marked one); true
 * while some are sparse and not yet due. */
bool abandon_sweep(uint32_t now, uint32_t age);
/* Guards the abandoned lists; the heap tier takes it around fork. */
extern lock_t abandoned_lock;

#endif
