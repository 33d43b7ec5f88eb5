// Workloads 3, 4, 5 and 8: multi-threaded patterns that need threads of their
// own (fresh threads, hand-offs, producer/consumer pairs).  These are
// registered once per thread count as "<name>/threads:N" and timed on the
// wall clock: one benchmark iteration starts the threads, lets them work and
// joins them, so thread creation is part of the measured cost (deliberately
// so for the larson hand-off and for thread churn).
#include "bench_common.h"

#include <atomic>
#include <mutex>

namespace sb {
namespace {

// ------------------------------------------------------------------------
// 3. Server simulation (larson): every thread owns a window of live blocks
// of random sizes (8..1000 B) and replaces random ones.  After each round
// the threads exit and the windows are handed to fresh threads, so blocks
// are freed by threads other than (and outliving) the ones that allocated
// them.  Item: one replacement (free + malloc).
void larson(benchmark::State& st, int nthreads) {
  const size_t kWindow = scaled(1000, 200);
  const size_t kRounds = scaled(20000, 500);
  std::vector<std::vector<void*>> win((size_t)nthreads, std::vector<void*>(kWindow));
  Rng r0(42);
  for (auto& w : win)
    for (auto& p : w) {
      size_t s = r0.range(8, 1000);
      p = malloc(s);
      memset(p, 0, s < 16 ? s : 16);
    }
  uint64_t epoch = 0;
  for (auto _ : st) {
    run_threads(nthreads, [&](int t) {
      Rng r((uint64_t)t * 7919 + epoch * 104729 + 1);
      std::vector<void*>& w = win[(size_t)t];
      for (size_t i = 0; i < kRounds; i++) {
        size_t idx = r.below(kWindow);
        free(w[idx]);
        size_t s = 8 + (size_t)(r.next() % 993);
        char* p = (char*)malloc(s);
        p[0] = (char)i;
        p[s - 1] = (char)i;
        w[idx] = p;
      }
    });
    epoch++;
  }
  for (auto& w : win)
    for (void* p : w) free(p);
  st.SetItemsProcessed(st.iterations() * (int64_t)nthreads * (int64_t)kRounds);
  report_rss(st);
}

// ------------------------------------------------------------------------
// 4. Producer/consumer (xmalloc-test style): N producer threads allocate
// blocks of 16..256 B and hand them in batches of 256, through a lock-free
// single-producer/single-consumer ring, to N consumer threads that free
// them: every free is remote.  "threads:N" means N producers + N consumers.
// Item: one block (malloc on one thread, free on another).
struct alignas(64) Ring {
  static constexpr size_t kBatchLen = 256;
  static constexpr size_t kSlots = 16;
  struct Slot {
    void* p[kBatchLen];
  };
  alignas(64) std::atomic<uint64_t> head{0};  // written by the producer
  alignas(64) std::atomic<uint64_t> tail{0};  // written by the consumer
  Slot slot[kSlots];
};

inline void backoff(unsigned& spins) {
  if (++spins > 64) std::this_thread::yield();  // oversubscribed: give way
}

void prodcons(benchmark::State& st, int npairs) {
  const size_t kBatchesPerProducer = scaled(200, 8);
  std::vector<Ring> rings((size_t)npairs);
  for (auto _ : st) {
    run_threads(2 * npairs, [&](int t) {
      Ring& ring = rings[(size_t)(t % npairs)];
      if (t < npairs) {  // producer
        Rng r((uint64_t)t + 99);
        for (size_t b = 0; b < kBatchesPerProducer; b++) {
          uint64_t h = ring.head.load(std::memory_order_relaxed);
          unsigned spins = 0;
          while (h - ring.tail.load(std::memory_order_acquire) >= Ring::kSlots) backoff(spins);
          Ring::Slot& s = ring.slot[h % Ring::kSlots];
          for (size_t i = 0; i < Ring::kBatchLen; i++) {
            size_t sz = 16 + (size_t)(r.next() % 241);
            char* p = (char*)malloc(sz);
            p[0] = 1;
            s.p[i] = p;
          }
          ring.head.store(h + 1, std::memory_order_release);
        }
      } else {  // consumer
        for (size_t b = 0; b < kBatchesPerProducer; b++) {
          uint64_t tl = ring.tail.load(std::memory_order_relaxed);
          unsigned spins = 0;
          while (ring.head.load(std::memory_order_acquire) == tl) backoff(spins);
          Ring::Slot& s = ring.slot[tl % Ring::kSlots];
          for (size_t i = 0; i < Ring::kBatchLen; i++) free(s.p[i]);
          ring.tail.store(tl + 1, std::memory_order_release);
        }
      }
    });
  }
  st.SetItemsProcessed(st.iterations() * (int64_t)npairs * (int64_t)kBatchesPerProducer *
                       (int64_t)Ring::kBatchLen);
  report_rss(st);
}

// ------------------------------------------------------------------------
// 5. False sharing.  Objects are 8 bytes; "written hard" means every byte is
// incremented kWrites times through a volatile pointer.  An allocator that
// hands two threads blocks in the same 64-byte line makes those writes
// ping-pong the line between cores.  Item: one 8-byte object written
// kWrites times.
constexpr size_t kObj = 8;

inline void hammer(char* p, size_t writes) {
  volatile char* v = p;
  for (size_t r = 0; r < writes; r++)
    for (size_t k = 0; k < kObj; k++) v[k] = (char)(v[k] + 1);
}

// cache-thrash (active false sharing): every thread allocates its own small
// objects, writes them hard and frees them, concurrently.
void cache_thrash(benchmark::State& st) {
  const size_t kWrites = 1000;
  ThreadSpan span(st);
  for (auto _ : st) {
    char* p = (char*)malloc(kObj);
    hammer(p, kWrites);
    free(p);
  }
  span.finish(st.iterations());
  report_rss(st);
}

// cache-scratch (passive false sharing): one thread allocates N small
// objects back to back (so they share cache lines) and gives one to each of
// N worker threads; each worker writes its object hard, frees it, then
// repeatedly allocates, writes hard and frees its own.  An allocator that
// hands a remotely freed block straight back to the freeing thread keeps the
// workers on one cache line.
void cache_scratch(benchmark::State& st, int nthreads) {
  const size_t kObjects = scaled(100, 10);
  const size_t kWrites = 1000;
  std::vector<char*> given((size_t)nthreads);
  for (auto _ : st) {
    for (auto& p : given) p = (char*)malloc(kObj);
    run_threads(nthreads, [&](int t) {
      char* p = given[(size_t)t];
      hammer(p, kWrites);
      free(p);
      for (size_t i = 0; i < kObjects; i++) {
        p = (char*)malloc(kObj);
        hammer(p, kWrites);
        free(p);
      }
    });
  }
  st.SetItemsProcessed(st.iterations() * (int64_t)nthreads * (int64_t)(kObjects + 1));
  report_rss(st);
}

// ------------------------------------------------------------------------
// 8. Thread churn: N short-lived threads at a time; each allocates 64 blocks
// of 16..2048 B, frees 48 of them and leaves 16 behind, which the next
// generation's thread frees (memory freed after its owner thread died).
// Item: one thread lifetime.
void thread_churn(benchmark::State& st, int nthreads) {
  constexpr size_t kAlloc = 64, kKeep = 16;
  std::vector<std::vector<void*>> orphans((size_t)nthreads);
  for (auto& o : orphans) o.reserve(kKeep);
  uint64_t gen = 0;
  for (auto _ : st) {
    run_threads(nthreads, [&](int t) {
      std::vector<void*>& mine = orphans[(size_t)t];
      for (void* p : mine) free(p);
      mine.clear();
      Rng r((uint64_t)t * 31 + gen * 1000003 + 7);
      void* p[kAlloc];
      for (size_t i = 0; i < kAlloc; i++) {
        size_t s = 16 + (size_t)(r.next() % 2033);
        p[i] = malloc(s);
        memset(p[i], (int)i, s < 64 ? s : 64);
      }
      for (size_t i = 0; i < kAlloc; i++) {
        if (i % (kAlloc / kKeep) == 0)
          mine.push_back(p[i]);
        else
          free(p[i]);
      }
    });
    gen++;
  }
  for (auto& o : orphans)
    for (void* p : o) free(p);
  st.SetItemsProcessed(st.iterations() * (int64_t)nthreads);
  report_rss(st);
}

}  // namespace

void register_threads() {
  for (int t : g_cfg.threads)
    benchmark::RegisterBenchmark(tname("larson", t).c_str(), larson, t)->UseRealTime();
  for (int t : g_cfg.threads)
    benchmark::RegisterBenchmark(tname("prodcons", t).c_str(), prodcons, t)->UseRealTime();
  {
    auto* b = benchmark::RegisterBenchmark("cache_thrash", cache_thrash)
                  ->UseRealTime()
                  ->Setup(span_reset);
    for (int t : g_cfg.threads) b->Threads(t);
  }
  for (int t : g_cfg.threads)
    benchmark::RegisterBenchmark(tname("cache_scratch", t).c_str(), cache_scratch, t)
        ->UseRealTime();
}

void register_churn() {
  for (int t : g_cfg.threads)
    benchmark::RegisterBenchmark(tname("thread_churn", t).c_str(), thread_churn, t)
        ->UseRealTime();
}

}  // namespace sb
