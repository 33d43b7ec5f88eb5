/* sparse.h - sparse spans: a span of at most SPAN_PURGE_MAX_BLOCKS blocks
 * that has stayed a quarter or less in use for the decay time gives back
 * the OS pages that hold only free blocks (span_purge_free_pages). */
#ifndef STRATA_SPARSE_H
#define STRATA_SPARSE_H

#include "heap_types.h"

/* Is s sparse (a quarter or less of its blocks in use)? */
static inline bool sparse_is(const span_t *s) { return s->used <= s->count / 4u; }
/* s just became sparse: mark it for its owner's next look (or the sweep's,
 * for an abandoned span); false when its class is never purged. */
bool sparse_mark(span_t *s);
/* Has s (whose owner we are) been sparse for `age` ms at `now`? Starts its
 * clock when it was marked, stops it when s is not sparse any more, and
 * when it is due (true, once). */
bool sparse_due(span_t *s, uint32_t now, uint32_t age);

/* Which spans of a heap sparse_purge purges: those sparse for the decay
 * time (the heap's tick), every marked sparse one whatever its age (the
 * thread's footprint grows: sparse_relieve), or every one (collect). */
typedef enum { SPARSE_DUE, SPARSE_MARKED, SPARSE_ALL } sparse_which_t;
void sparse_purge(heap_t *h, sparse_which_t which);
/* h took a run of clean pages from the page heap: purge its marked sparse
 * spans first (at most so often, see sparse.c). */
void sparse_relieve(heap_t *h);

#endif
