/* huge.h - blocks above the huge threshold: one mapping each, starting on a
 * segment boundary with a header there (found from the block by masking
 * p - 1); kept in a small cache on free (unmapped by the decay), mremap on
 * realloc. A leaf lock guards the cache and the list of mappings kept for
 * statistics. */
#ifndef STRATA_HUGE_H
#define STRATA_HUGE_H

#include "internal.h"
#include "tier.h"

/* NULL: no memory. With `zero` the block is fresh from the OS (zero);
 * without, it may be a cached mapping. */
void *huge_alloc(size_t size, size_t align, bool zero);
/* Free huge block p (into the cache, or unmapped); returns its usable size. */
size_t huge_free(void *p, const char *call);
size_t huge_usable(const void *p, const char *call);
/* Does p lie inside a live huge mapping? (A walk of them, under the lock.) */
bool huge_owns(const void *p);
/* Resize keeping the alignment: shrink in place, grow with mremap (in place
 * or moved without copying). NULL: could not, p untouched. */
void *huge_realloc(void *p, size_t size);

/* Expensive walk of the live mappings and the cache (takes the lock). */
bool huge_valid(void);

/* decay: cached mappings freed decay_ms ago; trim: every cached mapping;
 * stats: live mappings, and cached ones as mapped and dirty. */
extern const tier_t huge_tier;

#endif
