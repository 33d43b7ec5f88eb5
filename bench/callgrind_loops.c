/* strata_callgrind: the fast-path loops for instruction counting.
 *
 *   valgrind --tool=callgrind --toggle-collect=strata_cg_pair_loop \
 *       ./strata_callgrind pair 200000
 *   valgrind --tool=callgrind --toggle-collect=strata_cg_batch_loop \
 *       ./strata_callgrind batch 200
 *
 * Only the function named in --toggle-collect is counted (inclusive of the
 * malloc/free calls it makes), so start-up, allocator initialisation and
 * the warm-up loops below are excluded.  Divide the collected Ir by the
 * number of malloc/free pairs (printed by this program):
 *   pair  N: N times { p = malloc(32); free(p); }             -> N pairs
 *   batch R: R times { 1000 x malloc(32); free them in order } -> 1000 R pairs
 * The loop itself adds about 3-4 instructions per pair.
 *
 * Like strata_bench it links no allocator: LD_PRELOAD picks one.  It prints
 * the shared object providing malloc so the runner can check the preload.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#define MEASURED __attribute__((noinline, used))
#else
#define MEASURED __attribute__((noipa, used))
#endif

#define BATCH 1000
#define SIZE 32

/* Keep p alive for the optimiser at zero instruction cost. */
#define ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

MEASURED void strata_cg_pair_loop(size_t n) {
  for (size_t i = 0; i < n; i++) {
    void *p = malloc(SIZE);
    ESCAPE(p);
    free(p);
  }
}

MEASURED void strata_cg_batch_loop(size_t rounds) {
  void *ptr[BATCH];
  for (size_t r = 0; r < rounds; r++) {
    for (size_t i = 0; i < BATCH; i++) ptr[i] = malloc(SIZE);
    ESCAPE(ptr);
    for (size_t i = 0; i < BATCH; i++) free(ptr[i]);
  }
}

/* Warm-up copies: same work, not collected (separate, non-mergeable
 * functions so the toggle does not see them). */
MEASURED void strata_cg_warmup(size_t rounds) {
  void *ptr[BATCH];
  for (size_t r = 0; r < rounds; r++) {
    for (size_t i = 0; i < BATCH; i++) ptr[i] = malloc(SIZE);
    ESCAPE(ptr);
    for (size_t i = 0; i < BATCH; i++) free(ptr[i]);
    void *p = malloc(SIZE);
    ESCAPE(p);
    free(p);
  }
}

int main(int argc, char **argv) {
  if (argc != 3 || (strcmp(argv[1], "pair") && strcmp(argv[1], "batch"))) {
    fprintf(stderr, "usage: %s pair|batch ITERATIONS\n", argv[0]);
    return 2;
  }
  size_t n = strtoull(argv[2], NULL, 10);
  if (n == 0) {
    fprintf(stderr, "%s: ITERATIONS must be positive\n", argv[0]);
    return 2;
  }
  Dl_info info;
  void *sym = dlsym(RTLD_DEFAULT, "malloc");
  const char *provider = (sym && dladdr(sym, &info) && info.dli_fname) ? info.dli_fname : "unknown";

  strata_cg_warmup(3);
  unsigned long long pairs;
  if (!strcmp(argv[1], "pair")) {
    strata_cg_pair_loop(n);
    pairs = n;
  } else {
    strata_cg_batch_loop(n);
    pairs = (unsigned long long)n * BATCH;
  }
  printf("mode=%s pairs=%llu malloc_provider=%s\n", argv[1], pairs, provider);
  return 0;
}
