/* init.h - lazy process initialisation and options. */
#ifndef STRATA_INIT_H
#define STRATA_INIT_H

#include "internal.h"

extern _Atomic int init_state;     /* 2 once the allocator can serve */
void init_slow(void);
static inline void init_ensure(void) {
  if (unlikely(atomic_load_acquire(&init_state) != 2)) init_slow();
}

/* Options, from STRATA_OPTIONS=key=value,... (read once at init). */
typedef struct {
  size_t huge_threshold;   /* huge=BYTES: above this, direct mmap (also
                              raised at run time: options_huge_threshold) */
  bool huge_fixed;         /* huge= or mallopt(M_MMAP_THRESHOLD) set it */
  bool use_sbrk;           /* sbrk=0|1 */
  uint32_t decay_ms;       /* decay=MS: free memory returned after this long */
  bool bg_thread;          /* bg=0|1: the purge thread (else inline decay) */
  bool stats_at_exit;      /* stats=0|1: print statistics at exit */
  bool verbose;            /* verbose=0|1: warnings about the environment */
  bool guard;              /* guard=0|1: guard pages around segments, huge blocks */
  bool junk;               /* junk=0|1: fill new (0xAA) and freed (0xDF) blocks */
  bool canary;             /* canary=0|1: a canary after each small block */
} options_t;
extern options_t options;

/* The huge threshold, which frees raise while the program runs (see api.c);
 * relaxed atomics, as any thread may read or raise it. */
static inline size_t options_huge_threshold(void) {
  return __atomic_load_n(&options.huge_threshold, __ATOMIC_RELAXED);
}
/* Raise the threshold to `bytes` if that is more, unless it was fixed. */
static inline void options_huge_threshold_raise(size_t bytes) {
  if (__atomic_load_n(&options.huge_fixed, __ATOMIC_RELAXED)) return;
  size_t t = options_huge_threshold();
  while (bytes > t && !__atomic_compare_exchange_n(&options.huge_threshold, &t, bytes, true,
                                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}
/* Fix the threshold at `bytes` (huge= and mallopt): frees no longer raise it. */
static inline void options_huge_threshold_fix(size_t bytes) {
  __atomic_store_n(&options.huge_fixed, true, __ATOMIC_RELAXED);
  __atomic_store_n(&options.huge_threshold, bytes, __ATOMIC_RELAXED);
}

#endif
