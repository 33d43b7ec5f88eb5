/* backlog.h - what the tiers tell the purge driver (decay.c): memory became
 * purgeable, the program grew, the number of its threads changed. A leaf:
 * the tiers below the driver never call it, they note here, and the driver
 * reads what was noted; a note wakes the purge thread or flags the slow
 * paths' polls (decay_poll), whichever runs the decay.
 *
 * The purge thread's state lives here too, since a note must know whether a
 * thread is asleep to wake: NONE (not started, or retired), STARTING, AWAKE,
 * ASLEEP. It may start only in a program that runs threads of its own (two
 * hold heaps and __libc_single_threaded is 0): Strata never makes a
 * single-threaded process multithreaded.
 */
#ifndef STRATA_BACKLOG_H
#define STRATA_BACKLOG_H

#include "lock.h"
#include "tier.h"

/* `bytes` became purgeable (any thread, any lock held: only flags, maybe a
 * condition signal). */
void backlog_note(size_t bytes);
/* The program took `bytes` more (a segment, an arena's block): with the
 * notes, what decides when the purge thread is worth starting. */
void backlog_grew(size_t bytes);
/* A thread took a heap (+1) or gave it back at exit (-1); the child of a
 * fork has `n` (backlog_threads_reset). */
void backlog_thread(int delta);
void backlog_threads_reset(unsigned n);

/* The polls of the slow paths (decay_poll, decay.h) look at these. */
extern _Atomic bool backlog_poll_needed;   /* a pass or a start is due */
extern _Atomic bool backlog_start_due;     /* a start is: the next allocation */

/* ---- the driver's side (decay.c) ------------------------------------------ */
enum { PURGER_NONE = 0, PURGER_STARTING, PURGER_AWAKE, PURGER_ASLEEP };
/* Should the purge thread start now? (Also false for 1 s after a failed
 * start.) */
bool backlog_start_wanted(void);
/* Claim the start (NONE -> STARTING); then report how it went. */
bool backlog_start_claim(void);
void backlog_start_done(bool ok);
/* The purge thread: take the pending mark before a pass. */
void backlog_pass_begin(void);
/* The purge thread, with nothing left to purge: sleep until a note, or
 * return false when the program is down to one thread (it then retires;
 * the slow paths take over). */
bool backlog_sleep(void);
/* A slow path's poll with no thread running: is an inline pass due at
 * `now`? Then the pass, then backlog_pass_end(more). */
bool backlog_inline_due(uint32_t now);
void backlog_pass_end(bool more);

extern const tier_t backlog_tier;    /* fork hooks */

#endif
