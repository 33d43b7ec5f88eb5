/* internal.h - what every layer shares: constants of the address-space
 * layout, branch hints, atomics with the memory order in their names, locks,
 * checks and the fatal-error path.
 *
 * Address-space layout (see docs/ARCHITECTURE.md):
 *   segment  4 MiB aligned to 4 MiB; a small segment holds page runs (spans)
 *            of 8 KiB pages and starts with its header (segment_t).
 *   arena    64 MiB aligned to 64 MiB (16 segments): one buddy allocator for
 *            the large tier, its header and metadata at the start.
 *   huge     a direct mapping starting on a segment boundary with its header.
 * Every block lies strictly after the start of the segment (or arena) that
 * holds its header, so (p - 1) masked down finds that header; a huge block
 * aligned to a segment boundary may therefore start exactly one segment in.
 */
#ifndef STRATA_INTERNAL_H
#define STRATA_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "strata.h"

#ifndef STRATA_DEBUG
#define STRATA_DEBUG 1
#endif
#ifndef STRATA_STATS           /* per-thread counters on the fast paths */
#define STRATA_STATS 1
#endif

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define NOINLINE    __attribute__((noinline))
#define COLD        __attribute__((cold, noinline))
#define API         __attribute__((visibility("default")))

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

#define SEG_SHIFT     22
#define SEG_SIZE      ((size_t)1 << SEG_SHIFT)
#define SEG_MASK      (SEG_SIZE - 1)
#define PAGE_SHIFT    13                      /* span pages: 8 KiB */
#define PAGE_SIZE     ((size_t)1 << PAGE_SHIFT)
#define SEG_PAGES     (SEG_SIZE / PAGE_SIZE)  /* 512 */
#define ARENA_SHIFT   26
#define ARENA_SIZE    ((size_t)1 << ARENA_SHIFT)
#define ARENA_MASK    (ARENA_SIZE - 1)
#define OS_PAGE       ((size_t)4096)          /* purge and dirty granule */
#define ADDR_BITS     47                      /* user address space we map */

#define ALIGNMENT     16                      /* alignof(max_align_t) */
#define SMALL_MAX     ((size_t)32 * KiB)      /* largest small size class */
#define HUGE_MIN      ((size_t)16 * MiB)      /* default huge threshold */
#define DECAY_MS      250                     /* default decay (free -> purged) */

static inline uintptr_t align_up(uintptr_t x, size_t a) { return (x + a - 1) & ~(uintptr_t)(a - 1); }
static inline bool is_pow2(size_t x) { return x && !(x & (x - 1)); }
static inline unsigned log2_ceil(size_t x) { return x <= 1 ? 0 : 64 - (unsigned)__builtin_clzl(x - 1); }

/* ---- atomics: the memory order is part of the name --------------------- */
#define atomic_load_relaxed(p)      atomic_load_explicit((p), memory_order_relaxed)
#define atomic_load_acquire(p)      atomic_load_explicit((p), memory_order_acquire)
#define atomic_store_relaxed(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)
#define atomic_store_release(p, v)  atomic_store_explicit((p), (v), memory_order_release)
#define atomic_exchange_acq_rel(p, v) atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define atomic_cas_weak_release(p, e, v) \
  atomic_compare_exchange_weak_explicit((p), (e), (v), memory_order_release, memory_order_relaxed)
#define atomic_add_relaxed(p, v)    atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define atomic_sub_relaxed(p, v)    atomic_fetch_sub_explicit((p), (v), memory_order_relaxed)

/* ---- checks -------------------------------------------------------------
 * fatal: one line on stderr, written without allocating, then abort.
 * CHECK   (debug_level >= 1): cheap checks of client misuse, on by default.
 * ASSERT  (debug_level >= 2): internal invariants.
 * EXPENSIVE (debug_level >= 3): O(n) walks. */
COLD __attribute__((noreturn))
void fatal(const char *call, const void *addr, const char *what);

#define CHECK(cond, call, addr, what) \
  do { if (STRATA_DEBUG >= 1 && unlikely(!(cond))) fatal((call), (addr), (what)); } while (0)
#define ASSERT(cond) \
  do { if (STRATA_DEBUG >= 2 && unlikely(!(cond))) fatal("assert", NULL, #cond " at " __FILE__); } while (0)
#define EXPENSIVE_ASSERT(cond) \
  do { if (STRATA_DEBUG >= 3 && unlikely(!(cond))) fatal("assert", NULL, #cond " at " __FILE__); } while (0)

/* The name of the public call being served, for error messages. */
#define CALL_FREE    "free"
#define CALL_REALLOC "realloc"
#define CALL_USABLE  "malloc_usable_size"
#define MSG_NOT_BLOCK "pointer not allocated by strata (or already freed)"

#endif
