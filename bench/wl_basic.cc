// Workloads 1 and 2: the fast path (malloc/free pairs and batches), realloc
// growth, calloc and aligned allocation.  All use Google Benchmark's own
// threads (->Threads(n)) and wall-clock time, so "items per second" is the
// throughput of the whole process at that thread count.
#include "bench_common.h"

#include <algorithm>

namespace sb {
namespace {

const size_t kSizes[] = {16, 64, 256, 1024, 4096, 32768};
constexpr size_t kBatch = 1000;

// Register with every configured thread count, wall-clock timed.
benchmark::internal::Benchmark* threaded(benchmark::internal::Benchmark* b) {
  b->UseRealTime()->Setup(span_reset);
  for (int t : g_cfg.threads) b->Threads(t);
  return b;
}

// 1a. One malloc(size) immediately followed by its free.  Item: one pair.
void pair(benchmark::State& st, size_t size) {
  ThreadSpan span(st);
  for (auto _ : st) {
    void* p = malloc(size);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  span.finish(st.iterations());
  report_rss(st);
}

enum Order { kLifo, kFifo, kRandom };
const char* const kOrderName[] = {"lifo", "fifo", "random"};

// 1b. kBatch mallocs, then kBatch frees in LIFO, FIFO or a random order
// (four fixed random permutations, rotated).  Item: one malloc+free pair.
void batch(benchmark::State& st, size_t size, Order order) {
  std::vector<void*> ptr(kBatch);
  std::vector<uint32_t> perm[4];
  Rng rng(1234 + (uint64_t)st.thread_index());
  for (auto& p : perm) {
    p.resize(kBatch);
    for (size_t i = 0; i < kBatch; i++) p[i] = (uint32_t)i;
    for (size_t i = kBatch - 1; i > 0; i--) std::swap(p[i], p[rng.below(i + 1)]);
  }
  size_t round = 0;
  ThreadSpan span(st);
  for (auto _ : st) {
    for (size_t i = 0; i < kBatch; i++) ptr[i] = malloc(size);
    benchmark::DoNotOptimize(ptr.data());
    benchmark::ClobberMemory();
    switch (order) {
      case kLifo:
        for (size_t i = kBatch; i-- > 0;) free(ptr[i]);
        break;
      case kFifo:
        for (size_t i = 0; i < kBatch; i++) free(ptr[i]);
        break;
      case kRandom: {
        const uint32_t* p = perm[round++ & 3].data();
        for (size_t i = 0; i < kBatch; i++) free(ptr[p[i]]);
        break;
      }
    }
  }
  span.finish(st.iterations() * (int64_t)kBatch);
  report_rss(st);
}

// 2a. A vector doubling from 16 B to 64 MiB with realloc; the new half is
// touched (one byte per page) as a growing vector would fill it.
// Item: one realloc call (22 per vector).
void realloc_growth(benchmark::State& st) {
  const size_t kMax = (size_t)64 << 20;
  int64_t reallocs = 0;
  ThreadSpan span(st);
  for (auto _ : st) {
    size_t size = 16;
    char* p = (char*)malloc(size);
    if (!p) { st.SkipWithError("malloc(16) returned NULL"); break; }
    p[0] = 1;
    while (size < kMax) {
      size_t nsize = size * 2;
      char* q = (char*)realloc(p, nsize);
      if (!q) { free(p); p = nullptr; st.SkipWithError("realloc returned NULL"); break; }
      if (q[0] != 1) { st.SkipWithError("realloc lost the contents"); }
      p = q;
      touch(p + size, nsize - size);
      size = nsize;
      reallocs++;
    }
    if (!p) break;
    benchmark::DoNotOptimize(p);
    free(p);
  }
  span.finish(reallocs);
  report_rss(st);
}

// 2b. calloc(1, size) then free; the block is checked zero where touched
// (first byte of each page) and dirtied, so a reused block must really be
// cleared.  Item: one calloc+free pair.
void calloc_pair(benchmark::State& st, size_t size) {
  ThreadSpan span(st);
  for (auto _ : st) {
    char* p = (char*)calloc(1, size);
    if (!p) { st.SkipWithError("calloc returned NULL"); break; }
    for (size_t off = 0; off < size; off += 4096) {
      if (p[off] != 0) { st.SkipWithError("calloc memory not zeroed"); break; }
      p[off] = 1;
    }
    if (p[size - 1] != 0) st.SkipWithError("calloc memory not zeroed");
    p[size - 1] = 1;
    benchmark::DoNotOptimize(p);
    free(p);
  }
  span.finish(st.iterations());
  report_rss(st);
}

// 2c. Aligned allocation: batches of 64 aligned_alloc(64, 64) or
// posix_memalign(4096, 4096), then freed in order; alignment is checked.
// Item: one aligned allocation + free.
void aligned(benchmark::State& st, size_t align) {
  constexpr size_t kN = 64;
  void* ptr[kN];
  ThreadSpan span(st);
  for (auto _ : st) {
    for (size_t i = 0; i < kN; i++) {
      void* p = nullptr;
      if (align == 64) {
        p = aligned_alloc(64, 64);
      } else if (posix_memalign(&p, align, align) != 0) {
        p = nullptr;
      }
      if (!p || ((uintptr_t)p & (align - 1))) {
        st.SkipWithError(p ? "misaligned block" : "aligned allocation failed");
        for (size_t j = 0; j < i; j++) free(ptr[j]);
        free(p);
        goto out;
      }
      ptr[i] = p;
    }
    benchmark::DoNotOptimize(ptr);
    for (size_t i = 0; i < kN; i++) free(ptr[i]);
  }
out:
  span.finish(st.iterations() * (int64_t)kN);
  report_rss(st);
}

}  // namespace

void register_basic() {
  for (size_t s : kSizes)
    threaded(benchmark::RegisterBenchmark(("pair/" + std::to_string(s)).c_str(), pair, s));
  for (int o = 0; o < 3; o++)
    for (size_t s : kSizes)
      threaded(benchmark::RegisterBenchmark(
          ("batch/" + std::string(kOrderName[o]) + "/" + std::to_string(s)).c_str(), batch, s,
          (Order)o));
  threaded(benchmark::RegisterBenchmark("realloc_growth", realloc_growth));
  for (size_t s : {(size_t)64, (size_t)4096, (size_t)1 << 20})
    threaded(benchmark::RegisterBenchmark(("calloc/" + std::to_string(s)).c_str(), calloc_pair, s));
  for (size_t a : {(size_t)64, (size_t)4096})
    threaded(benchmark::RegisterBenchmark(("aligned/" + std::to_string(a)).c_str(), aligned, a));
}

}  // namespace sb
