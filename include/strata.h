/* strata.h - public interface of the Strata memory allocator.
 *
 * The strata_* functions are always available. The shared library also
 * exports the standard names (malloc, free, ...) so that LD_PRELOAD or
 * linking with -lstrata replaces the C library's allocator.
 *
 * Semantics follow glibc: see README.md for the details of each call.
 */
#ifndef STRATA_H
#define STRATA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- version -------------------------------------------------------------
 * The release this header belongs to (meson.build's project version). The
 * shared library's SONAME, libstrata.so.1, changes only with the ABI. */
#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 1
#define STRATA_VERSION_PATCH 0
#define STRATA_VERSION "0.1.0"

/* The release of the library in use ("0.1.0"), which may be newer than the
 * header a program was compiled with. */
const char *strata_version(void);

#if defined(__GNUC__)
#define STRATA_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define STRATA_MALLOC_ATTR
#endif

/* ---- the malloc family ------------------------------------------------ */
void *strata_malloc(size_t size) STRATA_MALLOC_ATTR;
void  strata_free(void *p);
void *strata_calloc(size_t n, size_t size) STRATA_MALLOC_ATTR;
void *strata_realloc(void *p, size_t size);
void *strata_reallocarray(void *p, size_t n, size_t size);
int   strata_posix_memalign(void **out, size_t alignment, size_t size);
void *strata_aligned_alloc(size_t alignment, size_t size) STRATA_MALLOC_ATTR;
void *strata_memalign(size_t alignment, size_t size) STRATA_MALLOC_ATTR;
void *strata_valloc(size_t size) STRATA_MALLOC_ATTR;
void *strata_pvalloc(size_t size) STRATA_MALLOC_ATTR;
size_t strata_malloc_usable_size(const void *p);
void  strata_free_sized(void *p, size_t size);
void  strata_free_aligned_sized(void *p, size_t alignment, size_t size);

/* 1 when p points into memory Strata manages (a segment, arena or huge
 * mapping of its own), else 0. Never faults, whatever p is. */
int   strata_owns(const void *p);

/* Return free memory to the OS. Returns 1 if memory was released, else 0
 * (the glibc malloc_trim contract; pad is accepted and ignored). */
int   strata_malloc_trim(size_t pad);

/* Return what the calling thread caches, the empty spans of exited threads
 * and every free page at once (malloc_trim(0) does the same). */
void  strata_collect(void);

/* ---- statistics ----------------------------------------------------------
 * A snapshot, merged from per-thread counters on read (no lock on the fast
 * paths). Bytes unless named otherwise. "allocated" counts blocks at their
 * class size (small), usable pages (large) or mapping less header (huge). */
#define STRATA_CLASSES 40
typedef struct strata_class_stats {
  size_t size;                /* block size of the class */
  unsigned long long nmalloc; /* blocks handed out so far */
  unsigned long long nfree;   /* blocks freed so far */
  size_t live;                /* nmalloc - nfree */
} strata_class_stats_t;

typedef struct strata_tier_stats {
  unsigned long long nmalloc, nfree;
  size_t allocated;           /* bytes in live blocks */
  size_t active;              /* bytes of pages holding them (spans, buddy blocks, mappings) */
  size_t resident;            /* bytes of the tier's mappings in memory */
} strata_tier_stats_t;

typedef struct strata_stats {
  size_t allocated;           /* live bytes: the sum of the tiers */
  size_t active;              /* pages holding live blocks */
  size_t resident;            /* bytes of Strata's mappings in memory (mincore) */
  size_t mapped;              /* bytes of Strata's mappings */
  size_t returned;            /* bytes given back to the OS so far (purged or unmapped) */
  size_t dirty;               /* free bytes not yet returned (the decay's backlog) */
  strata_tier_stats_t small, large, huge;
  strata_class_stats_t classes[STRATA_CLASSES];
} strata_stats_t;

/* Fill *out; returns 0 (EINVAL when out is NULL). Walks Strata's mappings to
 * count resident pages, so it costs about 1 ms per GiB mapped. */
int   strata_stats(strata_stats_t *out);
/* Write a readable table of the statistics to fd, without allocating
 * (README: "Returning memory and statistics"). */
void  strata_stats_print(int fd);
/* The same statistics as one JSON object, with the process's pid and
 * program name and the effective options, without allocating. */
void  strata_stats_print_json(int fd);

/* ---- options -------------------------------------------------------------
 * A program sets its own defaults by defining this string, as jemalloc's
 * programs define malloc_conf:
 *     const char *strata_options = "decay=1000,junk=1";
 * It is read at initialisation, before STRATA_OPTIONS, which overrides it.
 * The library sees it when the program is linked with it (-lstrata or
 * statically); under LD_PRELOAD only when the executable exports the
 * symbol (linked with -rdynamic). See README.md, "Options". */
extern const char *strata_options;

/* ---- the heap profiler ---------------------------------------------------
 * With STRATA_OPTIONS=prof=1, write the heap profile (sampled live and
 * allocated bytes by call stack, in the format google-pprof reads) to
 * path. Returns 0, ENOENT when the profiler is off, EINVAL when path is
 * NULL, or the error of opening path. */
int   strata_prof_dump(const char *path);

/* ---- the standalone buddy allocator ------------------------------------
 * A power-of-two buddy allocator over a region the caller owns (a static
 * buffer, shared memory, an arena on the stack). It makes no system call and
 * takes no lock: the caller serialises access to one region.
 *
 * strata_buddy_init places its metadata inside the region, right after the
 * first `prefix` bytes (which the caller keeps for itself and which are never
 * handed out). `min_block` (a power of two, at least 16) is the smallest block.
 * Returns a handle (which points into the region) or NULL when the region is
 * too small, misaligned (it must be aligned to 16 bytes) or the arguments are
 * invalid. Blocks are aligned to min_block relative to the region start; a
 * block of size 2^k lies at an offset that is a multiple of 2^k.
 */
typedef struct strata_buddy strata_buddy;

strata_buddy *strata_buddy_init(void *region, size_t size, size_t prefix,
                                size_t min_block);
/* NULL when no free block is large enough (size 0 gets a min_block block). */
void  *strata_buddy_alloc(strata_buddy *b, size_t size);
/* Returns 0, or EINVAL when p is not the start of a block allocated from b
 * (nothing is changed then). free(NULL) returns 0. */
int    strata_buddy_free(strata_buddy *b, void *p);
/* Grows in place when the following buddies are free, else moves; NULL when
 * no block fits (p is untouched). realloc(NULL, n) is alloc; realloc(p, 0)
 * frees p and returns NULL. */
void  *strata_buddy_realloc(strata_buddy *b, void *p, size_t size);
/* The size of the block at p (a power of two), from the pointer alone;
 * 0 when p is not the start of an allocated block. */
size_t strata_buddy_size(const strata_buddy *b, const void *p);
/* Total bytes in free blocks. */
size_t strata_buddy_free_bytes(const strata_buddy *b);

#ifdef __cplusplus
}
#endif
#endif /* STRATA_H */
