/* span.h - a run of pages holding blocks of one size class.
 *
 * Ownership: a small span belongs to one thread heap (owner), or to nobody
 * while it sits on the abandoned list. Only the owner touches local_free,
 * used, carved, purged and the list links; any thread may push onto xfree.
 *
 * Invariant (owner's view):
 *   carved == used + |local_free| + |purged|   (carved <= count of the class)
 * where `used` counts blocks held by the program, blocks checked out into
 * the owner's block cache (heap.free[c]), and remote frees still on xfree.
 *
 * Purged blocks: in a span of at most 64 blocks, the OS pages holding only
 * free blocks may be given back (sparse.c says when: after the span stayed
 * sparse for the decay time, at once when its owner's footprint grows, or
 * on strata_collect: span_purge_free_pages), and the free blocks on them leave
 * local_free for the bitmap `purged` (their links are gone with the pages).
 * A refill takes them back before it carves new blocks. While any is
 * purged, fast_limit is 0, so every free into the span takes the slow path,
 * which aborts on the free of a purged block (a double free whose key the
 * purge wiped).
 *
 * A free block holds its encoded link (stored = next ^ slot address ^
 * secret, so a stray write of a plain pointer cannot steer allocation) and,
 * in its second word, a key: a per-process random marker that every free path
 * sets and malloc clears, so free can screen for a double free with one
 * compare (the blocks are at least 16 bytes). The key's two low bits say more:
 * KEY_FRESH marks a block carved from zeroed pages and never handed out
 * (calloc then clears nothing: malloc clears both words), KEY_SUSPECT a
 * remote free of a block that already looked free (see span_push_remote).
 */
#ifndef STRATA_SPAN_H
#define STRATA_SPAN_H

#include "internal.h"
#include "list.h"

typedef struct block {
  uintptr_t next_enc;               /* free: encoded link */
  uintptr_t key;                    /* free: span_free_key (^ KEY_*); allocated: 0 */
} block_t;

struct heap;

/* What a run of pages holds: nothing (span_none), free pages, blocks of a
 * class, free pages being purged (pageheap.c), or one large block (large.c's
 * fallback when no arena can be mapped). */
enum { SPAN_NONE = 0, SPAN_FREE_RUN, SPAN_SMALL, SPAN_PURGING, SPAN_LARGE };
/* xfree is the remote free list with the span's state in its low bits
 * (blocks are 16-byte aligned), so that a remote free learns from its own
 * CAS whether to queue the span, and never touches the span after that CAS
 * unless it set QUEUED (which keeps the span from being released):
 *   XF_FULL   set by the owner when the span had nothing left to hand out
 *             (and no remote free) and went to its bin's full list;
 *   XF_QUEUED set by the remote free that finds the list empty and the span
 *             not queued (the first since the owner drained it), which then
 *             queues the span on its owner's ready list of its class; the
 *             owner drains it later (ready.c), and an emptied span goes to
 *             its spares; cleared by the owner taking it from there (or by
 *             that free, if the span was abandoned). */
enum { XF_FULL = 1, XF_QUEUED = 2, XF_TAGS = 3 };
static inline block_t *xf_list(uintptr_t x) { return (block_t *)(x & ~(uintptr_t)XF_TAGS); }

/* The fields the owner's free reads (owner, start, div_magic, fast_limit,
 * cls) come first, together: spans sit 112 bytes apart in a segment's
 * header, and 40 bytes cross a cache line less often than fields spread
 * over the whole struct. */
typedef struct span {
  struct heap *_Atomic owner;       /* NULL: abandoned or not small */
  char *start;                      /* first page */
  uint64_t div_magic;               /* floor(2^64 / block_size) + 1, see
                                       span_within_block_start */
  uint64_t fast_limit;              /* span_block_limit; 0 in checked mode
                                       and while a block is purged, which
                                       fails the fast path's test */
  uint32_t used;                    /* owner: see the invariant above */
  uint16_t carved;                  /* owner: blocks cut from the span so far */
  uint8_t cls;                      /* size class */
  uint8_t kind;                     /* SPAN_* */
  _Atomic uintptr_t xfree;          /* remote frees, pushed with CAS | XF_* */
  union {
    struct {                        /* a small span */
      block_t *local_free;          /* owner: blocks its cache gave back */
      struct span *qnext;           /* on its owner's ready list (ready.c) */
    };
    LIST_LINK(struct span) fifo;    /* a dirty free run: the page heap's FIFO */
  };
  uint32_t npages;                  /* length in PAGE_SIZE pages */
  uint32_t block_size;
  uint16_t count;                   /* blocks that fit */
  bool abandoned;                   /* on the abandoned list (under its lock) */
  bool dirty;                       /* page heap: pages may be resident */
  uint32_t dirty_ms;                /* free run: dirty since (os_now_ms);
                                       a spare span: cached since */
  uint32_t sparse_ms;               /* owner: sparse since (odd), or sparse
                                       and not yet seen (1), or 0 (not
                                       sparse, emptied, or purged since);
                                       see sparse.c */
  uint64_t purged;                  /* owner: purged blocks, bit i: block i */
  LIST_LINK(struct span) link;      /* a bin's list, a spare list, the
                                       abandoned list, a free run's length list */
} span_t;

extern uintptr_t span_secret;       /* per-process, set once at init */
/* Checked mode (options junk or canary): every malloc and free of a small
 * block takes the slow path, where the checks are. Set once at init. */
extern bool span_checked_mode;
extern uintptr_t span_free_key;     /* per-process, set once at init */
enum { KEY_SUSPECT = 1, KEY_FRESH = 2 };
/* Does b carry the key of a free block, in any of its forms? */
static inline bool block_looks_free(const block_t *b, uintptr_t free_key) {
  return (b->key ^ free_key) <= (KEY_SUSPECT | KEY_FRESH);
}
void span_init_secrets(uint64_t seed);

/* Links with an explicit secret (the fast paths keep a copy in the heap). */
static inline block_t *block_decode(const block_t *b, uintptr_t secret) {
  return (block_t *)(b->next_enc ^ (uintptr_t)b ^ secret);
}
static inline void block_encode(block_t *b, const block_t *next, uintptr_t secret) {
  b->next_enc = (uintptr_t)next ^ (uintptr_t)b ^ secret;
}
static inline block_t *block_next(const block_t *b) { return block_decode(b, span_secret); }
/* Link b to next and mark it free. */
static inline void block_set_next(block_t *b, const block_t *next) {
  block_encode(b, next, span_secret);
  b->key = span_free_key;
}

/* Expensive walk of s's invariant (above), its free list and its
 * fast-path limit; the owner's view. */
bool span_valid(const span_t *s);

/* Make a run from pageheap_alloc_span(.., SPAN_SMALL) a span of class cls
 * owned by owner. */
void span_init_small(span_t *s, unsigned cls, struct heap *owner);
/* Take every block the span can give now (local frees, remote frees, else
 * the purged blocks, else a batch of never-used blocks) as one list of *n
 * blocks, or a single block in checked mode; counts them as used. NULL when
 * the span is exhausted. Owner only, while its cache of the class is empty. */
block_t *span_take_free(span_t *s, uint32_t *n);
/* Give back the OS pages of s that hold only free blocks (and at least one
 * block of local_free: the others were purged or never written); returns
 * how many. Owner only; spans of at most SPAN_PURGE_MAX_BLOCKS blocks. */
#define SPAN_PURGE_MAX_BLOCKS 64
uint32_t span_purge_free_pages(span_t *s);
/* The bit of block b (a block start of s) in a bitmap such as purged. */
static inline uint64_t span_block_bit(const span_t *s, const block_t *b) {
  return (uint64_t)1 << (((uintptr_t)b - (uintptr_t)s->start) / s->block_size);
}
static inline bool span_block_purged(const span_t *s, const block_t *b) {
  return (s->purged & span_block_bit(s, b)) != 0;
}
/* Move the remote frees onto local_free; returns how many came. Owner only.
 * Aborts on a list longer than the span (a block pushed twice makes a cycle),
 * on a purged block, on a block that lost its free key (written after its
 * free) and on a block marked suspect (see span_push_remote) that is already
 * on local_free or on `cached`, the owner's cache of the class (a walk of at
 * most cached_max links; NULL when it is empty). */
uint32_t span_drain_remote(span_t *s, const block_t *cached, uint32_t cached_max);
/* Abort naming call if b is on list, a free list of at most max blocks (a
 * walk of at most max links; slow paths only). */
void span_check_not_on(const block_t *list, uint32_t max, const block_t *b, const char *call);
/* Push a block freed by a thread that does not own the span. Returns true
 * when this free set XF_QUEUED: it must then queue the span to its owner.
 * Otherwise the caller must not touch s again (the owner may drain the
 * block and release the span at once). */
bool span_push_remote(span_t *s, block_t *b);
/* May the owner give s back to the page heap (nothing out, nothing queued)? */
static inline bool span_releasable(span_t *s) {
  return s->used == 0 && !(atomic_load_acquire(&s->xfree) & XF_QUEUED);
}
/* Is p the start of a block of s (not in the tail waste, not mid-block)?
 * One multiply, no division and no range test: with M = floor(2^64/d) + 1
 * and e = d * M mod 2^64 (0 < e <= d), an offset k * d maps to k * e, and
 * any other offset below the span's end to at least M (> 2^48), so
 * off * M mod 2^64 < count * e exactly for the starts of the span's blocks
 * (a variant of Lemire et al.'s divisibility test). p lies in the span's
 * pages (span_of), so off is below the span's size. */
static inline uint64_t span_block_limit(const span_t *s) {
  return (uint64_t)s->count * ((uint64_t)s->block_size * s->div_magic);
}
static inline bool span_within_block_start(const span_t *s, const void *p, uint64_t limit) {
  return ((uintptr_t)p - (uintptr_t)s->start) * s->div_magic < limit;
}
/* The fast path's test: fails for every block in checked mode. */
static inline bool span_fast_block_start(const span_t *s, const void *p) {
  return span_within_block_start(s, p, s->fast_limit);
}
static inline bool span_is_block_start(const span_t *s, const void *p) {
  return span_within_block_start(s, p, span_block_limit(s));
}

#endif
