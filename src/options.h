/* options.h - key=value,... from the program's strata_options string, then
 * from STRATA_OPTIONS: one table of the options (options.c), read once at
 * initialisation without allocating. Every module reads the effective
 * values from `options`. The README's table, the verbose print at start and
 * the statistics' JSON follow the same table. */
#ifndef STRATA_OPTIONS_H
#define STRATA_OPTIONS_H

#include "internal.h"

/* What the statistics print at exit (option stats). */
typedef enum { STATS_OFF, STATS_TEXT, STATS_JSON } stats_mode_t;

/* The longest text option value, with its terminating zero. */
#define OPTIONS_PATH_MAX 256

typedef struct {
  size_t huge_threshold;   /* huge: above this, a mapping of its own (raised
                              at run time: options_huge_threshold_raise) */
  bool huge_fixed;         /* huge= or mallopt(M_MMAP_THRESHOLD) set it */
  bool sbrk;               /* sbrk: grow the small tier with the break */
  uint32_t decay_ms;       /* decay: free memory goes back after this long */
  bool bg;                 /* bg: the purge thread (else the slow paths) */
  bool purge_free;         /* purge=free: decayed pages with MADV_FREE */
  unsigned stats;          /* stats: a stats_mode_t, the print at exit */
  bool verbose;            /* verbose: the options at start, warnings */
  bool guard;              /* guard: guard pages, freed large blocks protected */
  bool junk;               /* junk: fill new (0xAA) and freed (0xDF) blocks */
  bool canary;             /* canary: a canary word after each small block */
  bool prof;               /* prof: the sampling heap profiler (prof.c) */
  bool prof_leak;          /* prof_leak: live sampled blocks by site at exit */
  size_t prof_rate;        /* prof_rate: mean bytes between two samples */
  char prof_out[OPTIONS_PATH_MAX]; /* prof_out: prefix of the exit profile */
} options_t;
extern options_t options;

/* Read the program's string, then STRATA_OPTIONS (init, once); a warning
 * on stderr for each entry that is skipped. */
void options_parse(void);
/* Write the effective value of every option on fd, as many lines as it
 * takes, each starting "strata: options:". */
void options_print(int fd);

/* An option's effective value: text (a named value, a text option) or,
 * when text is NULL, a number. */
typedef struct {
  const char *key;
  const char *text;
  unsigned long long number;
} option_value_t;
/* Option i's value; false past the last option. */
bool options_value(unsigned i, option_value_t *out);

/* The huge threshold, which frees raise while the program runs (api.c);
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
