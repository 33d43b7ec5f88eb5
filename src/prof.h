/* prof.h - the sampling heap profiler (option prof).
 *
 * Allocations are sampled as a Poisson process over the bytes allocated:
 * each byte starts a sample with probability 1/prof_rate, so an allocation
 * of s bytes is sampled with probability 1 - exp(-s/prof_rate), and the
 * intervals between samples are exponential (geometric in allocations of
 * one size). The profile is the one google-pprof reads ("heap_v2"): raw
 * sample counts, which it scales back by that probability.
 *
 * Small classes count down in the thread heaps (heap.h: one decrement on
 * the pop that the statistics' allocation count needed anyway); larger
 * blocks count down bytes here, on their slow paths. A sampled block is
 * served by the large tier, so its free passes a slow path that looks it
 * up (prof_forget). Its call stack is a walk over frame sizes learned from
 * libgcc's unwinder (prof.c), or that unwinder itself, outside every lock
 * and under a per-thread guard (the unwinder's first use loads libgcc_s,
 * which allocates). Tables mapped at start hold the call sites, the call
 * stacks and the live samples; no sample is taken once one is full.
 *
 * Lock: prof_lock guards both tables; it is a leaf (nothing is taken or
 * allocated while it is held) and prof_tier lists it for fork.
 */
#ifndef STRATA_PROF_H
#define STRATA_PROF_H

#include "tier.h"

/* The profiler runs: prof=1 and its tables are mapped. */
extern bool prof_on;

/* Map the tables when prof=1 (init, before the first heap). */
void prof_init(void);
/* Allocations of `size` bytes, each, before the next sample: one draw of
 * the Poisson process (a very large count when the profiler is off). */
intptr_t prof_interval(size_t size);
/* A small class counts down its block size (`drawn`); the allocation asked
 * for `size` bytes, and keeps the sample with probability
 * (1 - exp(-size/rate)) / (1 - exp(-drawn/rate)), so that each allocation
 * is sampled as its own size asks and the profile stays unbiased. Never
 * inside the profiler: what the loader and the unwinder allocate there
 * (prof_record refuses to record it) stays in its class. */
bool prof_keep(size_t size, size_t drawn);
/* A block of `size` bytes above the small classes is due for a sample:
 * counts its bytes down in the calling thread. */
bool prof_due_bytes(size_t size);
/* Record p (size bytes asked) as a sample with the caller's stack; false
 * when it is not recorded (inside the profiler already, or a table full). */
bool prof_record(void *p, size_t size);
/* p is being freed, or moved to q (NULL: freed): drop or move its sample;
 * the size its sample recorded, 0 when p was not sampled. */
size_t prof_forget(void *p, void *q);

/* Each thread keeps the last freed block that served a sampled small
 * allocation (a large-tier block) for its next one, so a program that
 * allocates and frees such blocks does not take and give back a large
 * block per sample. The stash is a live block to the statistics. */
/* The stashed block, if it has `size` bytes aligned to align; else NULL. */
void *prof_stash_take(size_t size, size_t align);
/* Keep p (usable bytes) when the stash is empty; false: the caller frees. */
bool prof_stash_put(void *p, size_t usable);
/* Empty the stash: its block, for the caller to free, or NULL. */
void *prof_stash_drop(void);

extern const tier_t prof_tier;

#endif
