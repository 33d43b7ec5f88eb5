/* bin.h - a class's spans in a thread heap (bin_t, heap_types.h): its
 * lists, parking, and blocks given back to their span. Owner only. */
#ifndef STRATA_BIN_H
#define STRATA_BIN_H

#include "heap_types.h"

static inline void bin_push(bin_t *bin, span_t *s) { LIST_PUSH(&bin->spans, s, link); }
/* s, on `spans`, has nothing to hand out: to `full` (tag XF_FULL), unless a
 * remote free raced in (the refill then takes that block). */
void bin_park(bin_t *bin, span_t *s);
/* s, parked, has blocks again: back on `spans`, second. */
void bin_unpark(bin_t *bin, span_t *s);
/* s, on `spans`, goes second, after the span refills take from. */
void bin_to_front(bin_t *bin, span_t *s);

/* Blocks of s came back (its `used` fell): an emptied span goes to the
 * spare spans (unless it is its bin's only span), a sparse one is marked
 * for sparse.c. */
void bin_span_freed(heap_t *h, span_t *s);
/* Give s the n blocks first..last, linked with the span's encoding (a
 * block cache's run, or one block); unparks s if it was parked. */
void bin_give_list(heap_t *h, span_t *s, block_t *first, block_t *last, uint32_t n);
static inline void bin_give(heap_t *h, span_t *s, block_t *b) { bin_give_list(h, s, b, b, 1); }

#endif
