/* ready.h - the remote frees' ready lists: the first remote free into a
 * span's empty list (span.h: XF_QUEUED) queues the span on its owner's ready
 * list of its class (heap_t.ready, lock-free); the owner takes them. */
#ifndef STRATA_READY_H
#define STRATA_READY_H

#include "heap_types.h"

/* A remote free set XF_QUEUED on s: queue s on its owner's ready list
 * (QUEUED keeps s alive until the owner clears it). */
void ready_queue(span_t *s);
/* h's refill of cls: take its queued spans on every READY_REFILLS-th refill
 * while some wait. */
void ready_at_refill(heap_t *h, unsigned cls);
/* Take the queued spans of the classes of mask (bit c: class c). */
#define READY_ALL (~(uint64_t)0)
void ready_take(heap_t *h, uint64_t mask);

#endif
