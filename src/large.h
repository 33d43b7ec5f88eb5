/* large.h - the large tier: sizes above SMALL_MAX up to the huge threshold,
 * from buddy arenas (64 MiB, aligned to their size). A block of 2^k bytes is
 * aligned to 2^k, so aligned requests up to half an arena cost nothing extra.
 * Only the pages up to the request (its usable size) are ever made resident:
 * the rest of the power-of-two block is purged if a previous user dirtied it.
 *
 * Locks: one per arena, plus large_grow_lock around adding an arena; taken
 * in that order (grow lock, then arenas by index), page heap last.
 */
#ifndef STRATA_LARGE_H
#define STRATA_LARGE_H

#include "internal.h"

/* The largest block an arena can give (half of it: the metadata sits in the
 * first half). */
#define LARGE_MAX (ARENA_SIZE / 2)

/* A block of at least size bytes aligned to align (<= LARGE_MAX); with
 * `zero`, its first size bytes are zero (only pages that may be dirty are
 * cleared: the others are zero from the OS). NULL: no memory. When no
 * arena can be mapped (an address-space limit), a block of up to a
 * segment's pages aligned to at most PAGE_SIZE is a run of the page heap
 * (SPAN_LARGE in a small segment): the large_run_ calls free it. */
void *large_alloc(size_t size, size_t align, bool zero);
void large_free(void *p, const char *call);
/* Usable bytes of the block at p (checked: fatal when p is not a block). */
size_t large_usable(const void *p, const char *call);
void large_run_free(void *p, const char *call);
size_t large_run_usable(const void *p, const char *call);
/* Resize in place (grow by absorbing free buddies); false: must move. */
bool large_resize(void *p, size_t size);
/* Purge every free page of every arena; true if something was purged. */
bool large_trim(void);
/* One decay pass at `now` (every half decay period or later): purge the
 * dirty pages, free or past a block's usable size, that no free or
 * allocation touched during the last two passes or for `age` ms; returns
 * the bytes purged, sets *younger when some must wait. */
size_t large_decay(uint32_t now, uint32_t age, bool *younger);

typedef struct {
  uint64_t nmalloc, nfree;
  size_t allocated;     /* usable bytes of live blocks */
  size_t active;        /* their power-of-two block bytes */
  size_t resident;      /* of all arenas (mincore) */
  unsigned arenas;
} large_stats_t;
void large_stats(large_stats_t *st);

void large_fork_prepare(void);
void large_fork_parent(void);
void large_fork_child(void);

#endif
