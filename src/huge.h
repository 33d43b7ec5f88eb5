/* huge.h - blocks above the huge threshold: one mapping each, starting on a
 * segment boundary with a header there (found from the block by masking
 * p - 1); kept in a small cache on free (unmapped by the decay), mremap on
 * realloc. A leaf lock guards the cache and the list of mappings kept for
 * statistics. */
#ifndef STRATA_HUGE_H
#define STRATA_HUGE_H

#include "internal.h"

/* NULL: no memory. With `zero` the block is fresh from the OS (zero);
 * without, it may be a cached mapping. */
void *huge_alloc(size_t size, size_t align, bool zero);
/* Free huge block p (into the cache, or unmapped); returns its usable size. */
size_t huge_free(void *p, const char *call);
/* The decay's pass: unmap the cached mappings freed decay_ms ago or more;
 * sets *younger when some must wait. */
void huge_decay(uint32_t now, bool *younger);
/* Unmap every cached mapping (strata_collect). */
void huge_trim(void);
size_t huge_usable(const void *p, const char *call);
/* Does p lie inside a live huge mapping? (A walk of them, under the lock.) */
bool huge_owns(const void *p);
/* Resize keeping the alignment: shrink in place, grow with mremap (in place
 * or moved without copying). NULL: could not, p untouched. */
void *huge_realloc(void *p, size_t size);

typedef struct {
  uint64_t nmalloc, nfree;
  size_t allocated, mapped, resident;   /* of live blocks */
  size_t cached, cached_resident;       /* of the cache's mappings */
} huge_stats_t;
void huge_stats(huge_stats_t *st);

void huge_fork_prepare(void);
void huge_fork_parent(void);
void huge_fork_child(void);

#endif
