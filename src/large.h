/* large.h - the large tier: sizes above SMALL_MAX up to the huge threshold,
 * from buddy arenas (arena.h; 64 MiB, aligned to their size). A block of
 * 2^k bytes is aligned to 2^k, so aligned requests up to half an arena cost
 * nothing extra. A block's pages past the request (its usable size) are
 * never touched by the program; if a previous user dirtied them, the decay
 * purges them like free pages. When no arena can be mapped (an address-space
 * limit), a block of up to a segment's pages aligned to at most PAGE_SIZE
 * is a run of the page heap (SPAN_LARGE in a small segment): the
 * large_run_ calls free it. */
#ifndef STRATA_LARGE_H
#define STRATA_LARGE_H

#include "arena.h"

/* A block of at least size bytes aligned to align (<= LARGE_MAX); with
 * `zero`, its first size bytes are zero (only pages that may be dirty are
 * cleared: the others are zero from the OS). NULL: no memory. */
void *large_alloc(size_t size, size_t align, bool zero);
void large_free(void *p, const char *call);
/* Usable bytes of the block at p (checked: fatal when p is not a block). */
size_t large_usable(const void *p, const char *call);
void large_run_free(void *p, const char *call);
size_t large_run_usable(const void *p, const char *call);
/* Resize in place (grow by absorbing free buddies); false: must move. */
bool large_resize(void *p, size_t size);

/* decay, trim: the arenas' free dirty pages; stats: arenas and runs. */
extern const tier_t large_tier;

#endif
