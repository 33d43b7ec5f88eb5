/* Model of alloc-test (OLogN's node-dot-cpp allocator tester), as
 * mimalloc-bench builds it (BENCH, `alloc-test N`: 2^18 slots shared out
 * among the N threads, maximum size 2^10, "full" memory access).
 *
 * Shape kept:
 * - each thread owns 2^18 / N slots and first fills about half of them
 *   (each slot by a coin toss);
 * - then, per operation, it picks a slot with a skewed "80/20" law (the
 *   slots are cut into 7 bands of 0.0064%, 0.15%, 1.5%, 8.2%, 24.6%, 39.3%
 *   and 26.2% of the slots, hit with probabilities 26.2%, 39.3%, 24.6%,
 *   8.2%, 1.5%, 0.15% and 0.0064%: the binomial(6, 0.2) terms, so a tiny
 *   band of hot slots takes most operations); an empty slot gets a new
 *   block, memset in full; a full one is read in full and freed;
 * - sizes are skewed small: class c (probability 1/2, 1/4, ..., 1/128,
 *   1/128 for c = 0..7) is uniform in (2^(c+2), 2^(c+3)], so half the
 *   blocks are 5..8 bytes and 1 in 128 is 513..1024 bytes;
 * - at the end each thread reads and frees what is left.
 * Work per thread is fixed (the original's 10^8 operations per thread,
 * here 4 x 10^6 x SCALE), so N threads do N times the work, as there. */
#include "model.h"

#define TOTAL_SLOTS (1u << 18)
#define OPS_PER_THREAD 4000000

typedef struct {
  unsigned char *ptr;
  uint32_t size;
} slot;

typedef struct {
  int id;
  size_t iterations;
  uint64_t ops;
  uint64_t sum;
} thread_arg;

typedef struct {
  uint32_t limit[6];   /* cumulative probabilities, of 2^32 */
  uint32_t start[8];   /* first slot of each band; start[7] = slot count */
} pareto;

static void pareto_init(pareto *p, uint32_t nslots)
{
  double prob[7], cum = 0;
  double c = 1; /* C(6, k) */
  for (int k = 0; k < 7; k++) {
    double term = c;
    for (int i = 0; i < k; i++)
      term *= 0.2;
    for (int i = k; i < 6; i++)
      term *= 0.8;
    prob[k] = term;
    c = c * (6 - k) / (k + 1);
  }
  for (int k = 0; k < 6; k++) {
    cum += prob[k];
    p->limit[k] = (uint32_t)(cum * 4294967295.0);
  }
  /* Band k, hit with prob[k], spans prob[6 - k] of the slots. */
  p->start[0] = 0;
  for (int k = 0; k < 6; k++)
    p->start[k + 1] = p->start[k] + (uint32_t)(nslots * prob[6 - k]);
  p->start[7] = nslots;
}

static inline size_t pareto_pick(const pareto *p, uint64_t *rng)
{
  uint64_t r = rng_next(rng);
  uint32_t r1 = (uint32_t)r, r2 = (uint32_t)(r >> 32);
  int band = 6;
  for (int k = 0; k < 6; k++)
    if (r1 < p->limit[k]) {
      band = k;
      break;
    }
  uint32_t width = p->start[band + 1] - p->start[band];
  return p->start[band] + (width ? r2 % width : 0);
}

static inline size_t pick_size(uint64_t *rng)
{
  uint64_t r = rng_next(rng);
  int c = __builtin_ctz((unsigned)(r & 0x7f) | 0x80);
  size_t base = (size_t)1 << (c + 2);
  return base + 1 + (size_t)((r >> 8) % base);
}

static uint64_t read_all(const unsigned char *p, size_t n)
{
  uint64_t s = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    s += w;
  }
  for (; i < n; i++)
    s += p[i];
  return s;
}

static uint32_t nslots;

static void *worker(void *arg)
{
  thread_arg *ta = arg;
  uint64_t rng = 41 + (uint64_t)ta->id * 0x10001, ops = 0, sum = 0;
  pareto par;
  pareto_init(&par, nslots);
  slot *slots = model_check(malloc(nslots * sizeof *slots), nslots * sizeof *slots);
  memset(slots, 0, nslots * sizeof *slots);
  ops++;

  for (uint32_t i = 0; i < nslots; i++) {
    if (rng_next(&rng) & 1) {
      size_t n = pick_size(&rng);
      slots[i].ptr = model_check(malloc(n), n);
      slots[i].size = (uint32_t)n;
      memset(slots[i].ptr, (int)n, n);
      ops++;
    }
  }
  for (size_t it = 0; it < ta->iterations; it++) {
    slot *s = &slots[pareto_pick(&par, &rng)];
    if (s->ptr) {
      sum += read_all(s->ptr, s->size);
      free(s->ptr);
      s->ptr = NULL;
    } else {
      size_t n = pick_size(&rng);
      s->ptr = model_check(malloc(n), n);
      s->size = (uint32_t)n;
      memset(s->ptr, (int)n, n);
    }
    ops++;
  }
  for (uint32_t i = 0; i < nslots; i++)
    if (slots[i].ptr) {
      sum += read_all(slots[i].ptr, slots[i].size);
      free(slots[i].ptr);
      ops++;
    }
  free(slots);
  ta->ops = ops + 1;
  ta->sum = sum;
  return NULL;
}

int main(int argc, char **argv)
{
  model_args a = model_parse(argc, argv, "alloc-test", 256);
  nslots = TOTAL_SLOTS / (uint32_t)a.threads;
  size_t iterations = model_scaled(OPS_PER_THREAD, a.scale);

  double t0 = model_now();
  thread_arg *ta = model_check(calloc((size_t)a.threads, sizeof *ta), sizeof *ta);
  for (int i = 0; i < a.threads; i++)
    ta[i] = (thread_arg){i, iterations, 0, 0};
  model_run_threads(a.threads, worker, ta, sizeof *ta);
  double t1 = model_now();

  uint64_t ops = 0, sum = 0;
  for (int i = 0; i < a.threads; i++) {
    ops += ta[i].ops;
    sum += ta[i].sum;
  }
  free(ta);
  if (sum == 42)   /* keeps the reads; never true in practice */
    fputc(' ', stderr);
  model_report(&a, t1 - t0, ops);
  return 0;
}
