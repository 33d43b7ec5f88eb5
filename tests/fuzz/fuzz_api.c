/* fuzz_api.c - libFuzzer target for the strata_* API.
 *
 * Build and run with tests/fuzz/run.sh (clang -fsanitize=fuzzer). The library
 * sources are compiled into the fuzzer with -DSTRATA_NO_OVERRIDE, so the
 * sanitizers keep their own malloc and this file calls strata_* only.
 *
 * How an input becomes a program
 * -------------------------------
 * The input is read as a sequence of fixed-width 6-byte operations (a short
 * input is padded with zero bytes; at most MAX_OPS operations run):
 *
 *   byte 0   bits 7..6: the simulated thread (0..3) that performs the op
 *            bits 5..0: the operation, through op_table (weighted)
 *   byte 1   the block slot (0..MAX_LIVE-1) the op works on
 *   byte 2-4 the size (see decode_size: small, large or huge tier)
 *   byte 5   the alignment or a variant (see decode_align and the ops)
 *
 * Thread 0 is the fuzzer's own thread. Threads 1..3 are real pthreads that
 * run exactly one operation at a time, handed over through two semaphores,
 * so an input always executes the same way (no races in the harness). A block
 * allocated on one thread and freed or realloc'd on another goes through
 * Strata's remote-free paths; the "thread exit" op ends a worker thread (its
 * heap is torn down and its spans abandoned; a later op starts a new one).
 *
 * What is checked
 * ---------------
 * Every live block has a shadow record: requested size, usable size,
 * alignment and a 64-bit seed. Its pattern bytes (all of the first 32 KiB,
 * then one word per 64 KiB, see "the pattern" below) always hold
 * pattern(seed), so the record is a compact shadow copy of the contents.
 * Every operation verifies the block it touches and one other live block in
 * rotation. Also:
 *   - a new block is non-NULL, aligned (16, or the requested alignment),
 *     owned (strata_owns), usable size >= request; its pattern bytes and
 *     the slack past the request up to the usable size are written (so all
 *     of a block up to 32 KiB, and for bigger ones one word per 64 KiB plus
 *     the tail); it overlaps no other live block;
 *   - calloc memory is zero (every byte); realloc keeps the prefix;
 *     realloc(p, 0) frees and returns NULL;
 *   - free, free_sized and free_aligned_sized keep errno;
 *   - strata_stats counts exactly the live blocks (see check_stats);
 *   - impossible requests fail with NULL and ENOMEM (or EINVAL for bad
 *     alignments), leaving the block of a failed realloc intact.
 * A failed check prints one line starting "fuzz_api: FAILED" and aborts, and
 * libFuzzer saves the input as a crash file.
 *
 * Memory stays bounded: live requested bytes are capped at LIVE_CAP, at most
 * HUGE_LIVE blocks above 16 MiB, and everything is freed (and the worker
 * threads are stopped) at the end of each input; then strata_stats must show
 * nothing allocated and Strata's mapped bytes must stay under 1 GiB.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "strata.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

enum {
  THREADS = 4,     /* simulated threads: 0 (the fuzzer's) and 3 workers */
  MAX_LIVE = 64,   /* block slots */
  MAX_OPS = 1024,  /* operations per input */
  OP_BYTES = 6,    /* input bytes per operation */
  HUGE_LIVE = 2,   /* live blocks above HUGE_THRESHOLD */
};
#define SMALL_MAX ((size_t)32 * KiB)       /* Strata's largest small class */
#define HUGE_THRESHOLD ((size_t)16 * MiB)  /* default: above this, own mmap */
#define LIVE_CAP ((size_t)96 * MiB)        /* live requested bytes */
#define ERRNO_SENTINEL 0x5eed

/* ---- the operations ---------------------------------------------------------- */
typedef enum {
  OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED_ALLOC, OP_POSIX_MEMALIGN, OP_MEMALIGN,
  OP_VALLOC, OP_PVALLOC, OP_FREE, OP_FREE_SIZED, OP_USABLE, OP_ERRORS, OP_CHECK_ALL,
  OP_TRIM, OP_THREAD_EXIT, OP_STATS, OP_COUNT
} opcode_t;

static const char *const op_names[OP_COUNT] = {
  "malloc", "calloc", "realloc", "aligned_alloc", "posix_memalign", "memalign",
  "valloc", "pvalloc", "free", "free_sized", "malloc_usable_size", "error cases",
  "check all", "malloc_trim/strata_collect", "thread exit", "strata_stats",
};

/* 64 entries: the weight of each operation is how often it appears. */
static const uint8_t op_table[64] = {
  OP_MALLOC, OP_MALLOC, OP_MALLOC, OP_MALLOC, OP_MALLOC,
  OP_MALLOC, OP_MALLOC, OP_MALLOC, OP_MALLOC, OP_STATS,                /* 9 + 1 */
  OP_CALLOC, OP_CALLOC, OP_CALLOC, OP_CALLOC, OP_CALLOC, OP_CALLOC,   /* 6 */
  OP_REALLOC, OP_REALLOC, OP_REALLOC, OP_REALLOC, OP_REALLOC,
  OP_REALLOC, OP_REALLOC, OP_REALLOC, OP_REALLOC, OP_REALLOC,         /* 10 */
  OP_ALIGNED_ALLOC, OP_ALIGNED_ALLOC, OP_ALIGNED_ALLOC, OP_ALIGNED_ALLOC,
  OP_POSIX_MEMALIGN, OP_POSIX_MEMALIGN, OP_POSIX_MEMALIGN, OP_POSIX_MEMALIGN,
  OP_MEMALIGN, OP_MEMALIGN, OP_MEMALIGN, OP_MEMALIGN,
  OP_VALLOC, OP_PVALLOC,
  OP_FREE, OP_FREE, OP_FREE, OP_FREE, OP_FREE,
  OP_FREE, OP_FREE, OP_FREE, OP_FREE, OP_FREE,                         /* 10 */
  OP_FREE_SIZED, OP_FREE_SIZED, OP_FREE_SIZED, OP_FREE_SIZED,
  OP_USABLE, OP_USABLE, OP_USABLE,
  OP_ERRORS, OP_ERRORS, OP_ERRORS,
  OP_CHECK_ALL, OP_TRIM, OP_THREAD_EXIT, OP_THREAD_EXIT,
};
_Static_assert(sizeof op_table == 64, "op_table needs 64 entries");

typedef struct {
  int index;        /* position in the input, for messages */
  opcode_t code;
  int thread;       /* 0..THREADS-1 */
  unsigned slot;    /* 0..MAX_LIVE-1 */
  size_t size;      /* decoded request size */
  uint8_t sizebytes[3];
  uint8_t aux;      /* byte 5: alignment / variant */
} op_t;

/* ---- shadow records -------------------------------------------------------------- */
/* How a block was allocated: decides how it may be freed with a size. */
typedef enum { KIND_PLAIN, KIND_ALIGNED_ALLOC, KIND_OTHER_ALIGNED } kind_t;

typedef struct {
  unsigned char *p; /* NULL: the slot is empty */
  size_t size;      /* requested bytes; its pattern bytes below size hold pattern(seed) */
  size_t usable;    /* strata_malloc_usable_size at allocation */
  size_t align;     /* alignment asked for (16 for the plain calls) */
  uint64_t seed;
  kind_t kind;
  int thread;       /* thread that allocated (or last realloc'd) it */
  const char *how;  /* the call that made it */
} shadow_t;

static shadow_t blocks[MAX_LIVE];
static size_t live_bytes;     /* sum of sizes of live blocks */
static int huge_live;         /* live blocks with size > HUGE_THRESHOLD */
static uint64_t seed_counter; /* reset per input: seeds are deterministic */
static unsigned rotate;       /* the "other" block checked after each op */
static const op_t *current;   /* for failure messages */

/* ---- failure -------------------------------------------------------------------- */
__attribute__((noreturn, format(printf, 1, 2)))
static void fail(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (current)
    fprintf(stderr, "fuzz_api: FAILED at op #%d (%s, thread %d, slot %u, size %zu, aux %u): %s\n",
            current->index, op_names[current->code], current->thread, current->slot,
            current->size, current->aux, msg);
  else
    fprintf(stderr, "fuzz_api: FAILED: %s\n", msg);
  abort();
}

/* ---- the pattern ------------------------------------------------------------------
 * 64-bit word w of a block with seed s holds s + w * K (K odd): distinct for
 * every position, different between blocks, never all zero, cheap to make.
 * Byte i is byte i % 8 (little-endian) of word i / 8.
 *
 * Which bytes carry it: all of [0, DENSE_MAX), and beyond that one word per
 * CHUNK (at an offset within the chunk that depends on the seed). The rest of
 * a big block is left alone: on a virtual machine a first touch of a page
 * costs tens of microseconds, so writing every byte of every multi-megabyte
 * block would cut the fuzzer to a few inputs a second. The set of pattern
 * bytes depends on the offset only, never on the block's size, so realloc
 * (which keeps a prefix) keeps them valid. A page handed out twice or purged
 * under a live block is still caught by the chunk words and the dense head.
 *
 * The loops touch only Strata's memory, which ASan does not track anyway, and
 * their branches are of no interest to the fuzzer, so they go without ASan
 * and coverage instrumentation. */
#define PAT_K 0x9E3779B97F4A7C15ull
#define DENSE_MAX ((size_t)32 * KiB)   /* every small block, entirely */
#define CHUNK ((size_t)64 * KiB)
#if defined(__clang__)
#define NO_ASAN __attribute__((no_sanitize("address", "coverage")))
#else
#define NO_ASAN
#endif

NO_ASAN static inline uint64_t pat_word(uint64_t seed, size_t w) { return seed + (uint64_t)w * PAT_K; }
NO_ASAN static inline uint8_t pat_byte(uint64_t seed, size_t i) {
  return (uint8_t)(pat_word(seed, i / 8) >> (8 * (i % 8)));
}
/* The offset of the pattern word of chunk c (in chunk 0 it may fall inside
 * the dense head: the same bytes then, no harm). */
static inline size_t chunk_word(uint64_t seed, size_t c) {
  return c * CHUNK + (size_t)((seed >> 11) + c * 40503u) % (CHUNK / 8) * 8;
}

/* Write the pattern into every byte of p[from, to). */
NO_ASAN static void fill_dense(unsigned char *p, uint64_t seed, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && i % 8; i++) p[i] = pat_byte(seed, i);
  for (; i + 8 <= to; i += 8) {
    uint64_t v = pat_word(seed, i / 8);
    memcpy(p + i, &v, 8);
  }
  for (; i < to; i++) p[i] = pat_byte(seed, i);
}

/* The first offset in p[from, to) without the pattern, or SIZE_MAX. */
NO_ASAN static size_t check_dense(const unsigned char *p, uint64_t seed, size_t from, size_t to) {
  size_t i = from;
  for (; i < to && i % 8; i++)
    if (p[i] != pat_byte(seed, i)) return i;
  for (; i + 8 <= to; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    if (v != pat_word(seed, i / 8))
      for (size_t k = i;; k++)
        if (p[k] != pat_byte(seed, k)) return k;
  }
  for (; i < to; i++)
    if (p[i] != pat_byte(seed, i)) return i;
  return SIZE_MAX;
}

/* Give the pattern bytes in [from, to) their values (see above). */
static void fill_pattern(unsigned char *p, uint64_t seed, size_t from, size_t to) {
  fill_dense(p, seed, from, to < DENSE_MAX ? to : DENSE_MAX);
  for (size_t c = from / CHUNK; c * CHUNK < to; c++) {
    size_t w = chunk_word(seed, c), lo = w < from ? from : w, hi = w + 8 < to ? w + 8 : to;
    if (lo < hi) fill_dense(p, seed, lo, hi);
  }
}

/* The first pattern byte in [0, upto) that is wrong, or SIZE_MAX. */
static size_t check_pattern(const unsigned char *p, uint64_t seed, size_t upto) {
  size_t bad = check_dense(p, seed, 0, upto < DENSE_MAX ? upto : DENSE_MAX);
  for (size_t c = 0; bad == SIZE_MAX && c * CHUNK < upto; c++) {
    size_t w = chunk_word(seed, c);
    if (w < upto) bad = check_dense(p, seed, w, w + 8 < upto ? w + 8 : upto);
  }
  return bad;
}

#define FIRST_NONZERO_ATTR NO_ASAN
#include "../first_nonzero.h"

/* Write every byte of p[from, to) (the slack past the request): usable
 * memory must be writable. */
NO_ASAN static void touch_range(unsigned char *p, size_t from, size_t to) {
  if (to > from) memset(p + from, 0xEE, to - from);
}

static void verify_block(unsigned slot, const char *when) {
  const shadow_t *b = &blocks[slot];
  if (!b->p) return;
  size_t bad = check_pattern(b->p, b->seed, b->size);
  if (bad != SIZE_MAX)
    fail("%s: block in slot %u (%p, %s, size %zu, align %zu, usable %zu, from thread %d) "
         "byte %zu is 0x%02x, expected 0x%02x",
         when, slot, (void *)b->p, b->how, b->size, b->align, b->usable, b->thread, bad,
         b->p[bad], pat_byte(b->seed, bad));
}

/* ---- bookkeeping -------------------------------------------------------------------- */
static void forget(unsigned slot) {
  shadow_t *b = &blocks[slot];
  live_bytes -= b->size;
  if (b->size > HUGE_THRESHOLD) huge_live--;
  memset(b, 0, sizeof *b);
}

/* A new block must not overlap any other live block (usable ranges). */
static void check_no_overlap(unsigned slot, const unsigned char *p, size_t usable) {
  size_t len = usable ? usable : 1;
  for (unsigned k = 0; k < MAX_LIVE; k++) {
    const shadow_t *o = &blocks[k];
    if (k == slot || !o->p) continue;
    size_t olen = o->usable ? o->usable : 1;
    if (p < o->p + olen && o->p < p + len)
      fail("new block %p (+%zu) overlaps live block %p (+%zu) in slot %u (%s, thread %d)",
           (void *)p, len, (void *)o->p, olen, k, o->how, o->thread);
  }
}

/* Checks shared by every successful allocation; then the block gets its
 * pattern and its slack is written. `zeroed`: calloc. */
static void adopt(unsigned slot, void *ptr, size_t size, size_t align, kind_t kind,
                  const char *how, int thread, bool zeroed) {
  unsigned char *p = ptr;
  if (!p) fail("%s(%zu, align %zu) returned NULL", how, size, align);
  size_t want = align < 16 ? 16 : align;
  if ((uintptr_t)p % want) fail("%s(%zu) = %p: not aligned to %zu", how, size, ptr, want);
  if (!strata_owns(p)) fail("%s(%zu) = %p: strata_owns says no", how, size, ptr);
  size_t usable = strata_malloc_usable_size(p);
  if (usable < size) fail("%s(%zu) = %p: usable size %zu < request", how, size, ptr, usable);
  check_no_overlap(slot, p, usable);
  if (zeroed) {
    size_t bad = first_nonzero(p, size);
    if (bad != SIZE_MAX)
      fail("%s(%zu) = %p: byte %zu is 0x%02x, not zero", how, size, ptr, bad, p[bad]);
  }
  shadow_t *b = &blocks[slot];
  *b = (shadow_t){ p, size, usable, align, ++seed_counter * 0xD1B54A32D192ED03ull + 1, kind,
                   thread, how };
  fill_pattern(p, b->seed, 0, size);
  touch_range(p, size, usable);
  live_bytes += size;
  if (size > HUGE_THRESHOLD) huge_live++;
}

/* Free the block in slot with free / free_sized / free_aligned_sized
 * (variant 0, 1, 2) after checking it; errno must survive. */
static void release(unsigned slot, int variant) {
  shadow_t *b = &blocks[slot];
  verify_block(slot, "before free");
  errno = ERRNO_SENTINEL;
  if (variant == 2 && b->kind == KIND_ALIGNED_ALLOC) {
    strata_free_aligned_sized(b->p, b->align, b->size);
  } else if (variant >= 1 && b->kind == KIND_PLAIN) {
    strata_free_sized(b->p, b->size);
  } else {
    strata_free(b->p);
  }
  if (errno != ERRNO_SENTINEL)
    fail("free(%p, %s, size %zu) changed errno to %d", (void *)b->p, b->how, b->size, errno);
  forget(slot);
}

/* ---- decoding sizes and alignments ------------------------------------------------- */
/* Three bytes -> a size. 9/16 small (with emphasis on tiny sizes and powers
 * of two +-1), 13/32 large (log-uniform over 32 KiB .. 16 MiB, plus the tier
 * boundaries now and then), 1/32 huge (16 MiB + 1 .. 24 MiB; only HUGE_LIVE
 * at a time, else large). Whatever would exceed LIVE_CAP is folded into the
 * small tier. */
static size_t decode_size(const uint8_t s[3]) {
  unsigned tier = s[0] % 16, v = (unsigned)s[1] << 8 | s[2];
  size_t size;
  if (tier == 15 && s[1] & 1 && huge_live < HUGE_LIVE) {
    size = HUGE_THRESHOLD + 1 + (size_t)v * 128;
  } else if (tier >= 9) {
    unsigned k = 15 + s[1] % 9;                           /* 2^15 .. 2^23 */
    if (s[0] >> 4 == 0) {                                 /* boundaries */
      static const size_t edge[16] = {
        SMALL_MAX + 1, SMALL_MAX + 16, 36 * KiB, 64 * KiB, 64 * KiB + 1, 4 * MiB,
        8 * MiB - 4096, 8 * MiB, 8 * MiB + 1, HUGE_THRESHOLD - 4096, HUGE_THRESHOLD - 1,
        HUGE_THRESHOLD, 2 * MiB, 1 * MiB - 1, 128 * KiB + 4095, 256 * KiB};
      size = edge[s[2] % 16];
    } else {
      size = ((size_t)1 << k) + (((size_t)s[2] << 8 | s[0]) << k >> 16);
    }
    if (size <= SMALL_MAX) size = SMALL_MAX + 1;
    if (size > HUGE_THRESHOLD) size = HUGE_THRESHOLD;
  } else {
    switch (s[1] % 4) {
    case 0: size = s[2] % 65; break;                      /* 0 .. 64 */
    case 1: size = v % 1025; break;                       /* the table range */
    case 2: {                                             /* 2^k - 1, 2^k, 2^k + 1 */
      size = ((size_t)1 << (s[2] % 16)) + (size_t)(s[1] >> 2) % 3 - 1;
      break;
    }
    default: size = v % (SMALL_MAX + 1); break;
    }
    if (size > SMALL_MAX) size = SMALL_MAX;
  }
  if (live_bytes + size > LIVE_CAP) size = v % (SMALL_MAX + 1);
  return size;
}

/* One byte -> a power-of-two alignment: 1 .. 8 MiB mostly, rarely 16 .. 128
 * MiB (above 32 MiB Strata serves it from the huge tier). */
static size_t decode_align(uint8_t a) {
  unsigned shift = a % 32;
  if (shift < 24) return (size_t)1 << shift;
  return (size_t)1 << (24 + shift % 4);
}

/* ---- the operations, run on the op's thread ---------------------------------------- */
static void do_alloc(const op_t *op) {
  unsigned slot = op->slot;
  if (blocks[slot].p) release(slot, 0);             /* make room (a free on this thread) */
  size_t size = op->size, align = decode_align(op->aux);
  void *p = NULL;
  switch (op->code) {
  case OP_MALLOC:
    adopt(slot, strata_malloc(size), size, 16, KIND_PLAIN, "malloc", op->thread, false);
    break;
  case OP_CALLOC: {
    /* Split size into nmemb * elem when it divides, either way round. */
    size_t elem = (size_t)1 << (op->aux % 6);
    size_t n = size % elem ? size : size / elem, e = size % elem ? 1 : elem;
    p = op->aux & 0x80 ? strata_calloc(e, n) : strata_calloc(n, e);
    adopt(slot, p, size, 16, KIND_PLAIN, "calloc", op->thread, true);
    break;
  }
  case OP_ALIGNED_ALLOC:
    adopt(slot, strata_aligned_alloc(align, size), size, align, KIND_ALIGNED_ALLOC,
          "aligned_alloc", op->thread, false);
    break;
  case OP_POSIX_MEMALIGN: {
    if (align < sizeof(void *)) align = sizeof(void *);
    p = (void *)(uintptr_t)0x1;                     /* must be replaced */
    int rc = strata_posix_memalign(&p, align, size);
    if (rc) fail("posix_memalign(%zu, %zu) returned %d", align, size, rc);
    adopt(slot, p, size, align, KIND_OTHER_ALIGNED, "posix_memalign", op->thread, false);
    break;
  }
  case OP_MEMALIGN: {
    /* With bit 5 of aux set, a non-power-of-two alignment: memalign rounds
     * it up to the next power of two. */
    size_t asked = align, want = align;
    if (op->aux & 0x20 && align >= 4) {
      asked = align + align / 2;
      want = align * 2;
    }
    adopt(slot, strata_memalign(asked, size), size, want, KIND_OTHER_ALIGNED, "memalign",
          op->thread, false);
    break;
  }
  case OP_VALLOC:
    adopt(slot, strata_valloc(size), size, 4096, KIND_OTHER_ALIGNED, "valloc", op->thread,
          false);
    break;
  case OP_PVALLOC: {
    size_t rounded = size ? (size + 4095) & ~(size_t)4095 : 4096;
    if (live_bytes + rounded > LIVE_CAP) rounded = 4096, size = 100;
    p = strata_pvalloc(size);
    adopt(slot, p, rounded, 4096, KIND_OTHER_ALIGNED, "pvalloc", op->thread, false);
    break;
  }
  default: break;
  }
}

static void do_realloc(const op_t *op) {
  unsigned slot = op->slot;
  shadow_t *b = &blocks[slot];
  size_t size = op->size;
  bool use_array = op->aux & 0x40;                  /* strata_reallocarray */
  if (!b->p) {                                      /* realloc(NULL, n) is malloc */
    void *q = use_array ? strata_reallocarray(NULL, size, 1) : strata_realloc(NULL, size);
    adopt(slot, q, size, 16, KIND_PLAIN, "realloc(NULL)", op->thread, false);
    return;
  }
  if (live_bytes - b->size + size > LIVE_CAP) size = 100;
  if (size > HUGE_THRESHOLD && b->size <= HUGE_THRESHOLD && huge_live >= HUGE_LIVE)
    size = HUGE_THRESHOLD;
  verify_block(slot, "before realloc");
  shadow_t old = *b;
  if (size == 0) {                                  /* frees, returns NULL */
    errno = ERRNO_SENTINEL;
    void *q = use_array ? strata_reallocarray(old.p, 0, 8) : strata_realloc(old.p, 0);
    if (q) fail("realloc(%p, 0) returned %p, not NULL", (void *)old.p, q);
    forget(slot);
    return;
  }
  unsigned char *q = use_array && size % 8 == 0 ? strata_reallocarray(old.p, size / 8, 8)
                                                : strata_realloc(old.p, size);
  if (!q) fail("realloc(%p, %zu) returned NULL", (void *)old.p, size);
  if ((uintptr_t)q % 16) fail("realloc(%zu) = %p: not 16-aligned", size, (void *)q);
  size_t keep = old.size < size ? old.size : size;
  size_t bad = check_pattern(q, old.seed, keep);
  if (bad != SIZE_MAX)
    fail("realloc(%p (%s, size %zu), %zu) = %p lost the prefix: byte %zu is 0x%02x, "
         "expected 0x%02x", (void *)old.p, old.how, old.size, size, (void *)q, bad, q[bad],
         pat_byte(old.seed, bad));
  size_t usable = strata_malloc_usable_size(q);
  if (usable < size) fail("realloc(%zu) = %p: usable size %zu < request", size, (void *)q, usable);
  check_no_overlap(slot, q, usable);
  /* The block keeps its seed: the grown tail continues the pattern. */
  live_bytes += size - old.size;
  if (old.size > HUGE_THRESHOLD) huge_live--;
  if (size > HUGE_THRESHOLD) huge_live++;
  *b = (shadow_t){ q, size, usable, 16, old.seed, KIND_PLAIN, op->thread, "realloc" };
  if (size > old.size) fill_pattern(q, b->seed, old.size, size);
  touch_range(q, size, usable);
}

/* Impossible requests fail cleanly; the variant comes from the size bytes. */
static void do_errors(const op_t *op) {
  unsigned variant = op->sizebytes[1] % 12;
  size_t k = op->sizebytes[2];                       /* a small offset */
  size_t align = decode_align(op->aux);
  void *p = NULL;
  const char *what = "";
  int want = ENOMEM;
  errno = 0;
  switch (variant) {
  case 0: what = "malloc(SIZE_MAX - k)"; p = strata_malloc(SIZE_MAX - k); break;
  case 1: what = "malloc(PTRDIFF_MAX + 1 + k)"; p = strata_malloc((size_t)PTRDIFF_MAX + 1 + k); break;
  case 2: what = "calloc overflow"; p = strata_calloc(((size_t)1 << 33) + k, (size_t)1 << 31); break;
  case 3: what = "calloc(1, SIZE_MAX - k)"; p = strata_calloc(1, SIZE_MAX - k); break;
  case 4: what = "aligned_alloc(align, SIZE_MAX - k)"; p = strata_aligned_alloc(align, SIZE_MAX - k); break;
  case 5: what = "memalign(align, SIZE_MAX / 2 + k)"; p = strata_memalign(align, SIZE_MAX / 2 + k); break;
  case 6: what = "pvalloc(SIZE_MAX - k)"; p = strata_pvalloc(SIZE_MAX - k); break;
  case 7: what = "valloc(SIZE_MAX - k)"; p = strata_valloc(SIZE_MAX - k); break;
  case 8: {                                          /* not a power of two: EINVAL */
    size_t bad = k % 5 == 0 ? 0 : align * 3;        /* 0, 3, 6, 12, ... */
    what = "aligned_alloc(0 or non-power-of-two, 64)";
    p = strata_aligned_alloc(bad, 64);
    want = EINVAL;
    break;
  }
  case 9: {                                          /* posix_memalign errors */
    static const size_t bad_aligns[] = {0, 1, 2, 3, 4, 12, 24, 48, 4097};
    void *out = (void *)(uintptr_t)0xabcdef;
    size_t a = bad_aligns[k % 9];
    int rc = strata_posix_memalign(&out, a, 64);
    if (rc != EINVAL) fail("posix_memalign(out, %zu, 64) returned %d, not EINVAL", a, rc);
    if (out != (void *)(uintptr_t)0xabcdef) fail("posix_memalign(out, %zu, 64) wrote *out", a);
    out = (void *)(uintptr_t)0xabcdef;
    if (align < sizeof(void *)) align = sizeof(void *);
    rc = strata_posix_memalign(&out, align, SIZE_MAX - k);
    if (rc != ENOMEM) fail("posix_memalign(out, %zu, SIZE_MAX - %zu) returned %d, not ENOMEM", align, k, rc);
    if (out != (void *)(uintptr_t)0xabcdef) fail("failed posix_memalign wrote *out");
    return;
  }
  default: {                                         /* realloc too big: block intact */
    unsigned slot = op->slot;
    shadow_t *b = &blocks[slot];
    if (!b->p) return;
    verify_block(slot, "before failing realloc");
    void *q = variant == 10 ? strata_realloc(b->p, SIZE_MAX - k)
                            : strata_reallocarray(b->p, SIZE_MAX / 2 + 1, 2 + k);
    if (q) fail("realloc(%p, impossible) returned %p", (void *)b->p, q);
    if (errno != ENOMEM) fail("realloc(%p, impossible) left errno %d, not ENOMEM", (void *)b->p, errno);
    verify_block(slot, "after failed realloc");
    if (strata_malloc_usable_size(b->p) != b->usable)
      fail("failed realloc changed the usable size of %p", (void *)b->p);
    return;
  }
  }
  if (p) fail("%s (k=%zu, align %zu) returned %p, not NULL", what, k, align, p);
  if (errno != want) fail("%s (k=%zu, align %zu): errno %d, not %d", what, k, align, errno, want);
}

/* strata_stats must account for exactly the harness's live blocks: nothing
 * else in this process allocates from Strata (the sanitizers and libFuzzer
 * have their own malloc), and only one thread runs at a time. "allocated"
 * counts a block at its usable size in every tier (class size, usable pages,
 * mapping less header), which is what malloc_usable_size reports. */
static void check_stats(void) {
  strata_stats_t st;
  if (strata_stats(&st) != 0) fail("strata_stats failed");
  size_t usable = 0, n = 0;
  for (unsigned k = 0; k < MAX_LIVE; k++)
    if (blocks[k].p) usable += blocks[k].usable, n++;
  unsigned long long live = (st.small.nmalloc - st.small.nfree) + (st.large.nmalloc - st.large.nfree) +
                            (st.huge.nmalloc - st.huge.nfree);
  if (st.allocated != st.small.allocated + st.large.allocated + st.huge.allocated)
    fail("strata_stats: allocated %zu != small %zu + large %zu + huge %zu", st.allocated,
         st.small.allocated, st.large.allocated, st.huge.allocated);
  if (st.allocated != usable)
    fail("strata_stats: allocated %zu, but the %zu live blocks have %zu usable bytes "
         "(small %zu, large %zu, huge %zu)", st.allocated, n, usable, st.small.allocated,
         st.large.allocated, st.huge.allocated);
  if (live != n)
    fail("strata_stats: nmalloc - nfree = %llu (small %llu, large %llu, huge %llu), but %zu blocks are live",
         live, st.small.nmalloc - st.small.nfree, st.large.nmalloc - st.large.nfree,
         st.huge.nmalloc - st.huge.nfree, n);
}

/* Execute one operation on the calling thread (the op's thread). */
static void exec_op(const op_t *op) {
  current = op;
  switch (op->code) {
  case OP_MALLOC: case OP_CALLOC: case OP_ALIGNED_ALLOC: case OP_POSIX_MEMALIGN:
  case OP_MEMALIGN: case OP_VALLOC: case OP_PVALLOC:
    do_alloc(op);
    break;
  case OP_REALLOC:
    do_realloc(op);
    break;
  case OP_FREE: case OP_FREE_SIZED:
    if (blocks[op->slot].p) {
      release(op->slot, op->code == OP_FREE ? 0 : 1 + op->aux % 2);
    } else {
      errno = ERRNO_SENTINEL;
      strata_free(NULL);
      if (errno != ERRNO_SENTINEL) fail("free(NULL) changed errno");
    }
    break;
  case OP_USABLE: {
    shadow_t *b = &blocks[op->slot];
    if (!b->p) {
      if (strata_malloc_usable_size(NULL) != 0) fail("malloc_usable_size(NULL) != 0");
      break;
    }
    size_t u = strata_malloc_usable_size(b->p);
    if (u != b->usable) fail("usable size of %p changed from %zu to %zu", (void *)b->p, b->usable, u);
    verify_block(op->slot, "malloc_usable_size");
    touch_range(b->p, b->size, u);
    break;
  }
  case OP_ERRORS:
    do_errors(op);
    break;
  case OP_STATS:
    check_stats();
    break;
  case OP_CHECK_ALL:
    for (unsigned k = 0; k < MAX_LIVE; k++) verify_block(k, "check all");
    break;
  case OP_TRIM:
    if (op->aux & 1) strata_collect();
    else strata_malloc_trim(0);
    /* A purge of live memory would zero whole pages: look at every block. */
    for (unsigned k = 0; k < MAX_LIVE; k++) verify_block(k, "after malloc_trim");
    break;
  default:
    break;
  }
  /* Plus one other block, in rotation. */
  rotate = (rotate + 1) % MAX_LIVE;
  verify_block(rotate, "rotating check");
  current = NULL;
}

/* ---- worker threads: one op at a time ------------------------------------------------ */
typedef struct {
  pthread_t tid;
  bool started;
  sem_t go, done;
  const op_t *op; /* the job; NULL tells the thread to exit */
} worker_t;

static worker_t workers[THREADS]; /* [0] unused: thread 0 is the caller */

static void sem_wait_intr(sem_t *s) {
  while (sem_wait(s) != 0 && errno == EINTR) {
  }
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  for (;;) {
    sem_wait_intr(&w->go);
    const op_t *op = w->op;
    if (op) exec_op(op);
    sem_post(&w->done);
    if (!op) return NULL; /* Strata's thread-exit destructor runs after this */
  }
}

static void run_on_thread(const op_t *op) {
  if (op->thread == 0) {
    exec_op(op);
    return;
  }
  worker_t *w = &workers[op->thread];
  if (!w->started) {
    sem_init(&w->go, 0, 0);
    sem_init(&w->done, 0, 0);
    if (pthread_create(&w->tid, NULL, worker_main, w)) fail("pthread_create failed");
    w->started = true;
  }
  w->op = op;
  sem_post(&w->go);
  sem_wait_intr(&w->done);
}

/* End worker t: after the join its heap has been torn down. */
static void stop_worker(int t) {
  worker_t *w = &workers[t];
  if (!w->started) return;
  w->op = NULL;
  sem_post(&w->go);
  sem_wait_intr(&w->done);
  pthread_join(w->tid, NULL);
  sem_destroy(&w->go);
  sem_destroy(&w->done);
  w->started = false;
}

/* ---- the entry point ------------------------------------------------------------------ */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  seed_counter = 0;
  rotate = 0;
  size_t nops = (len + OP_BYTES - 1) / OP_BYTES;
  if (nops > MAX_OPS) nops = MAX_OPS;
  for (size_t i = 0; i < nops; i++) {
    uint8_t b[OP_BYTES] = {0};
    size_t avail = len - i * OP_BYTES;
    memcpy(b, data + i * OP_BYTES, avail < OP_BYTES ? avail : OP_BYTES);
    op_t op = {0};
    op.index = (int)i;
    op.thread = b[0] >> 6;
    op.code = (opcode_t)op_table[b[0] & 63];
    op.slot = b[1] % MAX_LIVE;
    memcpy(op.sizebytes, b + 2, 3);
    op.aux = b[5];
    op.size = decode_size(op.sizebytes);
    if (op.code == OP_THREAD_EXIT) {
      if (op.thread) stop_worker(op.thread);
      continue;
    }
    run_on_thread(&op);
  }
  /* Free everything, each block on thread (slot % THREADS), after a
   * check; then stop the workers so the next input starts afresh. */
  op_t fin = {0};
  fin.index = (int)nops;
  fin.code = OP_FREE;
  for (unsigned k = 0; k < MAX_LIVE; k++) {
    if (!blocks[k].p) continue;
    current = &fin;
    verify_block(k, "final check");
    fin.slot = k;
    fin.thread = (int)(k % THREADS);
    run_on_thread(&fin);
  }
  for (int t = 1; t < THREADS; t++) stop_worker(t);
  if (live_bytes || huge_live) fail("bookkeeping: %zu bytes, %d huge still live", live_bytes, huge_live);
  /* Nothing is live now: the statistics must say so, and what Strata keeps
   * mapped must not grow from input to input (it stays near 130 MiB: two
   * arenas and a few segments; 1 GiB means mappings leak). */
  current = &fin;
  check_stats();
  strata_stats_t st;
  strata_stats(&st);
  if (st.mapped > ((size_t)1 << 30))
    fail("with no block live, Strata has %zu MiB mapped (%zu MiB resident)", st.mapped >> 20,
         st.resident >> 20);
  current = NULL;
#ifdef FUZZ_TRACE_MAPPED
  static unsigned long inputs;
  if (++inputs % 200 == 0)
    fprintf(stderr, "inputs %lu: mapped %zu MiB, resident %zu MiB, dirty %zu MiB\n", inputs,
            st.mapped >> 20, st.resident >> 20, st.dirty >> 20);
#endif
  return 0;
}
