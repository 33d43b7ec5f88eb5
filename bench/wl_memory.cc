// Workloads 6 and 7: large and huge blocks, and the memory (fragmentation /
// give-back) workload with resident-memory counters.
#include "bench_common.h"

#include <algorithm>

namespace sb {
namespace {

// 6a. Large: every thread keeps a window of 4 live blocks of log-uniform
// random sizes from 64 KiB to 32 MiB and replaces a random one per
// iteration, touching every page of the new block (page faults are part of
// the cost; an allocator that caches freed memory avoids them).
// Item: one replacement (free + malloc + touch).
void large(benchmark::State& st) {
  constexpr size_t kWindow = 4;
  void* win[kWindow] = {};
  Rng r(77 + (uint64_t)st.thread_index());
  SizeTable sizes(r, 512, (size_t)64 << 10, (size_t)32 << 20, true);
  ThreadSpan span(st);
  for (auto _ : st) {
    size_t idx = r.below(kWindow);
    free(win[idx]);
    size_t s = sizes.next();
    void* p = malloc(s);
    if (!p) { win[idx] = nullptr; st.SkipWithError("malloc returned NULL"); break; }
    touch(p, s);
    win[idx] = p;
  }
  span.finish(st.iterations());
  for (void* p : win) free(p);
  report_rss(st);
}

// 6b. Huge: malloc of 64..128 MiB, one byte written per 64 KiB (a huge
// buffer used sparsely), freed.  Item: one huge malloc + free.
void huge(benchmark::State& st) {
  Rng r(91 + (uint64_t)st.thread_index());
  ThreadSpan span(st);
  for (auto _ : st) {
    size_t s = ((size_t)64 << 20) + r.below((size_t)64 << 20);
    void* p = malloc(s);
    if (!p) { st.SkipWithError("malloc returned NULL"); break; }
    touch(p, s, 64 << 10);
    free(p);
  }
  span.finish(st.iterations());
  report_rss(st);
}

// 7. Memory: allocate many blocks of log-uniform 16 B..4 KiB (each written
// in full), free a random 90%, then allocate blocks of other sizes
// (4..32 KiB) until the freed volume is live again.  One cycle per run.
// Counters, in MiB, all measured inside the workload as deltas from the
// process RSS at its start (VmHWM and RSS are process-wide, so absolute
// values would include whatever ran before; the runner also runs this
// workload in a fresh process of its own):
//   peak_MiB        peak RSS (VmHWM after resetting it via
//                   /proc/self/clear_refs; if not permitted, the larger of
//                   the RSS samples at the two allocation peaks)
//   allocated_MiB   RSS once the first blocks are all allocated
//   after_free_MiB  RSS right after the 90% were freed (memory given back)
//   final_MiB       RSS after the re-allocation (reuse of freed memory for
//                   other sizes; the live volume is then back to live_MiB)
//   live_MiB        bytes requested and live at the first peak
// Item: one block allocated and freed.
void memory(benchmark::State& st) {
  const size_t kBlocks = scaled(250000, 4000);
  int64_t items = 0;
  for (auto _ : st) {
    bool hwm_ok = reset_hwm();
    size_t base = rss_bytes();
    Rng r(2024);
    std::vector<void*> blk(kBlocks);
    std::vector<size_t> sz(kBlocks);
    size_t live = 0;
    for (size_t i = 0; i < kBlocks; i++) {
      size_t s = r.log_uniform(16, 4096);
      void* p = malloc(s);
      if (!p) { st.SkipWithError("malloc returned NULL"); return; }
      memset(p, (int)i, s);
      blk[i] = p;
      sz[i] = s;
      live += s;
    }
    size_t rss1 = rss_bytes();
    size_t live_peak = live;

    // Free a random 90%.
    std::vector<uint32_t> order(kBlocks);
    for (size_t i = 0; i < kBlocks; i++) order[i] = (uint32_t)i;
    for (size_t i = kBlocks - 1; i > 0; i--) std::swap(order[i], order[r.below(i + 1)]);
    size_t nfree = kBlocks * 9 / 10, freed = 0;
    for (size_t k = 0; k < nfree; k++) {
      size_t i = order[k];
      free(blk[i]);
      blk[i] = nullptr;
      freed += sz[i];
    }
    size_t rss2 = rss_bytes();

    // Allocate other sizes until the freed volume is live again.
    std::vector<void*> more;
    more.reserve(freed / 4096 + 1);
    size_t again = 0;
    while (again < freed) {
      size_t s = r.log_uniform(4097, 32768);
      void* p = malloc(s);
      if (!p) { st.SkipWithError("malloc returned NULL"); return; }
      memset(p, 1, s);
      more.push_back(p);
      again += s;
    }
    size_t rss3 = rss_bytes();
    size_t peak = hwm_ok ? hwm_bytes() : std::max(rss1, rss3);
    if (peak < std::max(rss1, rss3)) peak = std::max(rss1, rss3);

    for (void* p : blk) free(p);
    for (void* p : more) free(p);
    items += (int64_t)(kBlocks + more.size());

    auto mib = [&](size_t v) { return (double)(v > base ? v - base : 0) / kMiB; };
    st.counters["peak_MiB"] = mib(peak);
    st.counters["allocated_MiB"] = mib(rss1);
    st.counters["after_free_MiB"] = mib(rss2);
    st.counters["final_MiB"] = mib(rss3);
    st.counters["live_MiB"] = (double)live_peak / kMiB;
    st.counters["hwm_reset"] = hwm_ok ? 1 : 0;
  }
  st.SetItemsProcessed(items);
  report_rss(st);
}

}  // namespace

void register_memory() {
  {
    auto* b = benchmark::RegisterBenchmark("large", large)->UseRealTime()->Setup(span_reset);
    for (int t : g_cfg.threads) b->Threads(t);
  }
  {
    auto* b = benchmark::RegisterBenchmark("huge", huge)->UseRealTime()->Setup(span_reset);
    for (int t : g_cfg.threads) b->Threads(t);
  }
  // One cycle per run: the counters describe exactly one cycle, and the
  // runner repeats the process instead.
  benchmark::RegisterBenchmark("memory", memory)->UseRealTime()->Iterations(1);
}

}  // namespace sb
