/* huge.h - blocks above the huge threshold: one mapping each, starting on a
 * segment boundary with a header there (found from the block by masking
 * p - 1); munmap on free, mremap on realloc. A leaf lock guards the list
 * of mappings kept for statistics. */
#ifndef STRATA_HUGE_H
#define STRATA_HUGE_H

#include "internal.h"

void *huge_alloc(size_t size, size_t align);    /* zeroed; NULL: no memory */
/* Unmap huge block p; returns its usable size. */
size_t huge_free(void *p, const char *call);
size_t huge_usable(const void *p, const char *call);
/* Resize keeping the alignment: shrink in place, grow with mremap (in place
 * or moved without copying). NULL: could not, p untouched. */
void *huge_realloc(void *p, size_t size);

typedef struct {
  uint64_t nmalloc, nfree;
  size_t allocated, mapped, resident;
} huge_stats_t;
void huge_stats(huge_stats_t *st);

void huge_fork_prepare(void);
void huge_fork_parent(void);
void huge_fork_child(void);

#endif
