/* spare.h - a thread heap's spare spans: empty spans kept for reuse
 * (heap_t.spare, under spare_lock), per class, up to SPARE_PAGES <<
 * spare_shift pages; the decay gives back those unused for the decay time. */
#ifndef STRATA_SPARE_H
#define STRATA_SPARE_H

#include "heap_types.h"

/* 4 MiB at first, up to 64 MiB (see spare.c). */
#define SPARE_PAGES 512
#define SPARE_SHIFT_MAX 4

/* s, owned by h, empty and off its bin: keep it, or give it back to the
 * page heap when the spares are full. */
void spare_put(heap_t *h, span_t *s);
/* A spare span of class cls (still owned by h), or NULL. */
span_t *spare_take(heap_t *h, unsigned cls);
/* Give back h's spare spans that are at least `age` ms old at `now`. */
void spare_decay(heap_t *h, uint32_t now, uint32_t age, bool *younger);
/* Thread exit: every spare span of h back, and its bound back to the
 * start. */
void spare_release(heap_t *h);

#endif
