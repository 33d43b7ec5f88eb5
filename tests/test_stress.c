/* test_stress.c - many threads allocating, handing blocks to each other,
 * reallocating and freeing, with every block's contents checked.
 *
 * Uses only the strata_* API, so that it also runs in the ThreadSanitizer
 * build (override=false).
 *
 * usage: test_stress [scale [threads]]   (defaults 40 and 4)
 *
 * Phase 1 (mixed): each thread keeps a table of live blocks and does random
 *   operations on it: allocate (malloc, calloc, aligned variants), realloc,
 *   free, or swap a block with a random slot of a shared lock-protected
 *   exchange array; what comes out of the exchange was allocated by another
 *   thread and is then freed, reallocated or kept (remote frees).
 * Phase 2 (producer/consumer): half the threads allocate and push blocks
 *   onto a bounded queue, the other half pop, check and free them, so every
 *   free is remote; some consumers realloc the block before freeing it.
 *
 * Every block is filled with a pattern derived from (pointer, size, seed)
 * and checked before it is freed or reallocated. Blocks above 8 KiB are
 * filled at the head, the tail and one word per 4 KiB page.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>

#include "strata.h"
#include "testlib.h"

static const uint64_t SEED = 0x5EED5EED12345678ull;

/* ---- patterns ---------------------------------------------------------- */
static inline uint64_t block_key(const void *p, size_t n) {
  return mix64((uint64_t)(uintptr_t)p ^ mix64(n + SEED));
}
static inline unsigned char pat(uint64_t key, size_t off) {
  return (unsigned char)((key >> ((off & 7) * 8)) ^ (off >> 3) ^ (off >> 11));
}
/* The offsets that carry the pattern: all of a small block; the first and
 * last 4 KiB and 8 bytes per 4 KiB page of a big one. */
#define FULL_MAX (8 * KiB)
static void fill_range(unsigned char *p, size_t lo, size_t hi, uint64_t key) {
  for (size_t i = lo; i < hi; i++) p[i] = pat(key, i);
}
static size_t check_range(const unsigned char *p, size_t lo, size_t hi, uint64_t key) {
  for (size_t i = lo; i < hi; i++)
    if (p[i] != pat(key, i)) return i;
  return SIZE_MAX;
}
static void fill_block(void *p, size_t n) {
  uint64_t key = block_key(p, n);
  unsigned char *c = p;
  if (n <= FULL_MAX) {
    fill_range(c, 0, n, key);
    return;
  }
  fill_range(c, 0, 4 * KiB, key);
  for (size_t off = 4 * KiB; off + 8 <= n - 4 * KiB; off += 4 * KiB) fill_range(c, off, off + 8, key);
  fill_range(c, n - 4 * KiB, n, key);
}
/* Check the pattern that fill_block(p_old, n) wrote, now at q, restricted to
 * offsets below `limit` (after a realloc the block moved and shrank). */
static size_t check_block_at(const void *q, const void *p_old, size_t n, size_t limit) {
  uint64_t key = block_key(p_old, n);
  const unsigned char *c = q;
  size_t lim = limit < n ? limit : n, r;
  if (n <= FULL_MAX) return check_range(c, 0, lim, key);
  if ((r = check_range(c, 0, lim < 4 * KiB ? lim : 4 * KiB, key)) != SIZE_MAX) return r;
  for (size_t off = 4 * KiB; off + 8 <= n - 4 * KiB && off + 8 <= lim; off += 4 * KiB)
    if ((r = check_range(c, off, off + 8, key)) != SIZE_MAX) return r;
  if (lim > n - 4 * KiB) return check_range(c, n - 4 * KiB, lim, key);
  return SIZE_MAX;
}

/* ---- random numbers (testlib's rnd) ------------------------------------ */
typedef uint64_t rng_t;
static size_t rnd_size(rng_t *r) {
  uint64_t x = rnd(r) % 10000;
  if (x < 8000) return 1 + rnd(r) % ((size_t)2 << (rnd(r) % 10)); /* 1 .. 1 KiB, skewed small */
  if (x < 9500) return 1 + rnd(r) % (32 * KiB);                  /* small classes */
  if (x < 9900) return 32 * KiB + rnd(r) % (480 * KiB);           /* large */
  if (x < 9997) return 512 * KiB + rnd(r) % (3584 * KiB);         /* large, up to 4 MiB */
  return 16 * MiB + rnd(r) % (8 * MiB);                           /* huge (rare) */
}

/* ---- blocks ------------------------------------------------------------ */
typedef struct {
  void *p;
  size_t n;
} blk_t;

static void check_block(const blk_t *b, const char *where) {
  size_t off = check_block_at(b->p, b->p, b->n, b->n);
  if (off != SIZE_MAX)
    failf("%s: block %p (%zu bytes): byte %zu was overwritten (%#x)", where, b->p, b->n, off,
         ((const unsigned char *)b->p)[off]);
}

static int new_block(rng_t *r, blk_t *b) {
  size_t n = rnd_size(r);
  uint64_t how = rnd(r) % 100;
  void *p = NULL;
  size_t align = 16;
  if (how < 75) {
    p = strata_malloc(n);
  } else if (how < 85) {
    p = strata_calloc(1, n);
    if (p) {
      const unsigned char *c = p;
      size_t step = n <= 4096 ? 1 : 509;
      for (size_t i = 0; i < n; i += step)
        if (c[i]) {
          failf("calloc(1, %zu) = %p: byte %zu is %#x", n, p, i, c[i]);
          break;
        }
      if (c[n - 1]) failf("calloc(1, %zu) = %p: last byte is %#x", n, p, c[n - 1]);
    }
  } else if (how < 90) {
    align = (size_t)16 << (rnd(r) % 9);
    p = strata_aligned_alloc(align, n);
  } else if (how < 94) {
    align = (size_t)8 << (rnd(r) % 10);
    if (strata_posix_memalign(&p, align, n) != 0) p = NULL;
  } else if (how < 97) {
    align = (size_t)1 << (rnd(r) % 13);
    p = strata_memalign(align, n);
  } else {
    p = strata_realloc(NULL, n);
  }
  if (!p) {
    failf("allocation of %zu bytes (variant %" PRIu64 ") failed: %s", n, how, strerror(errno));
    return 0;
  }
  if (align < 16) align = 16;
  if ((uintptr_t)p & (align - 1)) failf("block %p of %zu bytes is not aligned to %zu", p, n, align);
  if ((how & 15) == 0) {
    size_t u = strata_malloc_usable_size(p);
    if (u < n) failf("usable size of %p is %zu < %zu", p, u, n);
    if (!strata_owns(p)) failf("strata_owns(%p) is 0 for a live block", p);
  }
  b->p = p;
  b->n = n;
  fill_block(p, n);
  return 1;
}

static void free_block(rng_t *r, blk_t *b, const char *where) {
  check_block(b, where);
  if (rnd(r) % 8 == 0) strata_free_sized(b->p, b->n);
  else strata_free(b->p);
  b->p = NULL;
  b->n = 0;
}

static void realloc_block(rng_t *r, blk_t *b, const char *where) {
  check_block(b, where);
  size_t n;
  uint64_t k = rnd(r) % 4;
  if (k == 0) n = b->n + 1 + rnd(r) % 64;          /* grow a little */
  else if (k == 1) n = b->n > 1 ? 1 + rnd(r) % b->n : 1; /* shrink */
  else n = rnd_size(r);
  void *q = strata_realloc(b->p, n);
  if (!q) {
    failf("%s: realloc(%p, %zu) failed: %s", where, b->p, n, strerror(errno));
    return;
  }
  if ((uintptr_t)q & 15) failf("realloc result %p is not 16-aligned", q);
  size_t off = check_block_at(q, b->p, b->n, n);
  if (off != SIZE_MAX)
    failf("%s: realloc(%p, %zu -> %zu) = %p lost byte %zu", where, b->p, b->n, n, q, off);
  b->p = q;
  b->n = n;
  fill_block(q, n);
}

/* ---- shared state ------------------------------------------------------ */
#define EXCH 512
static blk_t exch[EXCH];
static pthread_mutex_t exch_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long remote_frees, swaps;

#define QCAP 256
static struct {
  pthread_mutex_t lock;
  pthread_cond_t nonempty, nonfull;
  blk_t q[QCAP];
  size_t head, count;
  int producers_left;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
           {{0, 0}}, 0, 0, 0};

static long scale = 40;
static int nthreads = 4;
static pthread_barrier_t barrier;

#define SLOTS 256

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  rng_t r = SEED ^ mix64((uint64_t)id + 1);
  blk_t local[SLOTS];
  memset(local, 0, sizeof local);
  long ops = scale * 1000;
  char where[64];
  snprintf(where, sizeof where, "thread %d", id);

  pthread_barrier_wait(&barrier);
  /* ---- phase 1: mixed, with exchanges ---- */
  for (long i = 0; i < ops; i++) {
    blk_t *b = &local[rnd(&r) % SLOTS];
    if (!b->p) {
      new_block(&r, b);
      continue;
    }
    uint64_t what = rnd(&r) % 100;
    if (what < 45) {
      free_block(&r, b, where);
    } else if (what < 60) {
      realloc_block(&r, b, where);
    } else if (what < 90) {
      /* Swap with a random exchange slot. */
      size_t j = rnd(&r) % EXCH;
      pthread_mutex_lock(&exch_lock);
      blk_t got = exch[j];
      exch[j] = *b;
      pthread_mutex_unlock(&exch_lock);
      atomic_fetch_add_explicit(&swaps, 1, memory_order_relaxed);
      *b = got;
      if (b->p) {
        uint64_t fate = rnd(&r) % 4;
        if (fate < 2) {
          free_block(&r, b, "remote free");
          atomic_fetch_add_explicit(&remote_frees, 1, memory_order_relaxed);
        } else if (fate == 2) {
          realloc_block(&r, b, "remote realloc");
        } /* else keep it */
      }
    } else {
      check_block(b, where);
    }
  }
  for (int i = 0; i < SLOTS; i++)
    if (local[i].p) free_block(&r, &local[i], where);

  pthread_barrier_wait(&barrier);
  /* ---- phase 2: producers and consumers ---- */
  int producer = id % 2 == 0;
  long items = scale * 300;
  if (producer) {
    for (long i = 0; i < items; i++) {
      blk_t b;
      if (!new_block(&r, &b)) continue;
      pthread_mutex_lock(&queue.lock);
      while (queue.count == QCAP) pthread_cond_wait(&queue.nonfull, &queue.lock);
      queue.q[(queue.head + queue.count) % QCAP] = b;
      queue.count++;
      pthread_cond_signal(&queue.nonempty);
      pthread_mutex_unlock(&queue.lock);
    }
    pthread_mutex_lock(&queue.lock);
    queue.producers_left--;
    pthread_cond_broadcast(&queue.nonempty);
    pthread_mutex_unlock(&queue.lock);
  } else {
    for (;;) {
      pthread_mutex_lock(&queue.lock);
      while (queue.count == 0 && queue.producers_left > 0)
        pthread_cond_wait(&queue.nonempty, &queue.lock);
      if (queue.count == 0) {
        pthread_mutex_unlock(&queue.lock);
        break;
      }
      blk_t b = queue.q[queue.head];
      queue.head = (queue.head + 1) % QCAP;
      queue.count--;
      pthread_cond_signal(&queue.nonfull);
      pthread_mutex_unlock(&queue.lock);
      if (rnd(&r) % 10 == 0) realloc_block(&r, &b, "consumer realloc");
      free_block(&r, &b, "consumer");
      atomic_fetch_add_explicit(&remote_frees, 1, memory_order_relaxed);
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc > 1) scale = strtol(argv[1], NULL, 10);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (scale < 1) scale = 1;
  if (nthreads < 4) nthreads = 4;
  if (nthreads % 2) nthreads++; /* as many producers as consumers */
  queue.producers_left = nthreads / 2;

  pthread_t *t = strata_malloc(sizeof(pthread_t) * (size_t)nthreads);
  if (!t) return 1;
  pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
  for (int i = 0; i < nthreads; i++) {
    int e = pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    REQUIRE(e == 0, "pthread_create: %s", strerror(e));
  }
  for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
  pthread_barrier_destroy(&barrier);
  strata_free(t);

  /* The main thread frees what is left in the exchange: more remote frees,
   * into heaps whose threads have exited. */
  rng_t r = SEED;
  long left = 0;
  for (int j = 0; j < EXCH; j++)
    if (exch[j].p) {
      free_block(&r, &exch[j], "main (exchange)");
      left++;
    }
  CHECK(!queue.count, "%zu blocks left in the queue", queue.count);

  info("scale %ld, %d threads, %ld swaps, %ld remote frees, %ld freed by main", scale, nthreads,
       atomic_load(&swaps), atomic_load(&remote_frees), left);
  return checks_result("test_stress");
}
