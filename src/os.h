/* os.h - the layer that talks to the kernel (but for the purge thread's
 * set-up). Every call returns an
 * error (NULL or false) instead of aborting; callers decide. */
#ifndef STRATA_OS_H
#define STRATA_OS_H

#include "internal.h"
#include "line.h"

/* A fresh, zeroed, readable and writable mapping of `size` bytes whose
 * address a satisfies (a + shift) % align == 0 (align a power of two, at
 * least OS_PAGE); NULL on failure. It takes `align` bytes of address space
 * more for a moment, or, where that fails (an address-space limit), only
 * `size`. */
void *os_map_aligned(size_t size, size_t align, size_t shift);
/* Map [p, p + size) fresh, where nothing is mapped yet (a mapping grows in
 * place); false when that fails, with *taken when some of the range is
 * another mapping's (for good) rather than a lack of memory. */
bool  os_map_fixed(void *p, size_t size, bool *taken);
bool  os_unmap(void *p, size_t size);
/* Give the pages back; the range reads as zeros afterwards. */
bool  os_purge(void *p, size_t size);
/* Give back pages that have been free a while: with `lazy` (option
 * purge=free) MADV_FREE, which the kernel acts on when it needs the memory
 * and which may leave the bytes; else as os_purge. True when the range now
 * reads as zeros. */
bool  os_purge_decayed(void *p, size_t size, bool lazy);
/* Bytes given back so far (purged or unmapped), and mapped now (by the
 * calls here: mappings and the break). */
extern _Atomic size_t os_returned;
extern _Atomic size_t os_mapped;
/* Make [p, p + size) inaccessible (a guard page), or accessible again. */
bool  os_protect_none(void *p, size_t size);
bool  os_protect_rw(void *p, size_t size);
/* Bytes of [p, p + size) resident in memory (mincore). */
size_t os_resident(const void *p, size_t size);
/* A millisecond clock (monotonic, wraps after 49 days: compare differences). */
uint32_t os_now_ms(void);
/* Milliseconds from `then` to `now` on os_now_ms's clock, across its wrap;
 * 0 when `then` is later: a stamp written after a decay pass read its
 * `now` is no age, not an age of 49 days. */
static inline uint32_t os_ms_since(uint32_t now, uint32_t then) {
  int32_t d = (int32_t)(now - then);
  return d > 0 ? (uint32_t)d : 0;
}
/* Processors this process may run on (its affinity mask), counted once. */
unsigned os_cpus(void);
void os_sleep_ms(uint32_t ms);
/* write(2) all of buf, retrying; errno is kept. Never a cancellation point
 * (the allocator's calls are not), see os_cancel_off. */
void os_write_all(int fd, const char *buf, size_t len);
/* End l with a newline, write it to its fd (os_write_all) and empty it. */
void os_write_line(line_t *l);
/* Disable thread cancellation, returning the caller's state for
 * os_cancel_restore: write(2) and stdio are cancellation points, and glibc's
 * printers (malloc_stats, malloc_info) write all of their output even in a
 * thread with a cancellation pending. */
int  os_cancel_off(void);
void os_cancel_restore(int state);
/* Move the mapping [p, p+old) to exactly `to` (already mapped by us) with
 * `size` bytes, or grow it in place when to == p. */
bool  os_remap(void *p, size_t old, size_t size, void *to);

/* The program break: os_sbrk_grow extends it by `size` bytes at `expect`
 * (the current break) and fails when another user moved it; os_sbrk_shrink
 * lowers it from `top` to `to`, only while the break is still `top`. */
void *os_sbrk_current(void);
bool  os_sbrk_grow(void *expect, size_t size);
bool  os_sbrk_shrink(void *top, void *to);

/* This process: its id, and its program's name (the base name of argv[0],
 * as the C library keeps it; "" where it keeps none). */
int os_pid(void);
const char *os_program_name(void);

/* A random 64-bit secret from the kernel's AT_RANDOM bytes. */
uint64_t os_random_secret(void);

/* Fault injection for tests: when >= 0, that many more mappings succeed
 * and then every os_map_aligned, os_map_fixed and os_sbrk_grow fails. */
extern _Atomic long os_fail_after;

#endif
