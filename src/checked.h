/* checked.h - checked mode: junk fills and canaries (options junk and
 * canary), applied by the API's slow paths. */
#ifndef STRATA_CHECKED_H
#define STRATA_CHECKED_H

#include "span.h"

/* The room a canary block needs: the canary word and the size word. */
#define CHECKED_CANARY_ROOM 16

/* Write the canary after the req bytes of block p (of `block` bytes). */
void checked_canary_set(char *p, size_t req, size_t block);
/* The requested size of canary block p; aborts naming `call` when its
 * words were hit. */
size_t checked_canary_check(const char *p, size_t block, const char *call);
void checked_junk_new(void *p, size_t size);
void checked_junk_freed(void *p, size_t size);
/* The free of small block p of span s in checked mode: its canary, then
 * junk past its two words (the free list's). A block that looks free is
 * left to the double-free check. */
void checked_free_small(span_t *s, void *p, const char *call);

#endif
