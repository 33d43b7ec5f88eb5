// Strata benchmark harness: shared helpers.
//
// The benchmark binary never links an allocator: it calls the plain C
// allocation functions and the comparison runner (bench/compare.py) swaps
// the allocator underneath with LD_PRELOAD.  Everything here must therefore
// stay allocator-neutral.  Files are built with -fno-builtin-malloc & co. so
// the compiler cannot elide or merge allocation calls.
#pragma once

#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace sb {

// ---------------------------------------------------------------- config

struct Config {
  std::vector<int> threads{1, 2, 4, 8, 16};  // thread counts to register
  bool smoke = false;  // tiny working sets: for `meson test`, not for numbers
};
extern Config g_cfg;

// Scale a per-iteration work amount down in smoke mode.
inline size_t scaled(size_t full, size_t smoke) {
  return g_cfg.smoke ? smoke : full;
}

void register_basic();    // fast path, realloc, calloc, aligned
void register_threads();  // larson, producer/consumer, false sharing
void register_memory();   // large, huge, memory
void register_churn();    // thread churn

// ---------------------------------------------------------------- random

// xorshift64*: cheap, good enough, and no allocation (std::mt19937 is fine
// too but costs more than the allocator calls we are measuring).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
    if (s == 0) s = 1;
  }
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  // Uniform in [0, n).
  uint64_t below(uint64_t n) {
    return (uint64_t)(((unsigned __int128)next() * n) >> 64);
  }
  // Uniform in [lo, hi].
  uint64_t range(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  // Log-uniform in [lo, hi]: as many 64-128 KiB blocks as 16-32 MiB ones.
  size_t log_uniform(size_t lo, size_t hi) {
    double u = (double)(next() >> 11) * (1.0 / 9007199254740992.0);
    double v = std::exp(std::log((double)lo) + u * (std::log((double)hi) - std::log((double)lo)));
    size_t r = (size_t)v;
    return r < lo ? lo : (r > hi ? hi : r);
  }
};

// A table of precomputed sizes, so the hot loops do not pay for exp/log.
struct SizeTable {
  std::vector<uint32_t> v;
  size_t i = 0;
  SizeTable(Rng& r, size_t n, size_t lo, size_t hi, bool log_scale) : v(n) {
    for (auto& x : v) x = (uint32_t)(log_scale ? r.log_uniform(lo, hi) : r.range(lo, hi));
  }
  size_t next() {
    size_t s = v[i];
    if (++i == v.size()) i = 0;
    return s;
  }
};

// ---------------------------------------------------------------- memory

// /proc is read with open/read into a stack buffer: no allocation, so the
// measurement does not disturb the allocator being measured.
inline size_t read_proc(const char* path, char* buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t n = 0;
  for (;;) {
    ssize_t k = read(fd, buf + n, cap - 1 - n);
    if (k <= 0) break;
    n += (size_t)k;
    if (n >= cap - 1) break;
  }
  close(fd);
  buf[n] = 0;
  return n;
}

// Current resident set size in bytes (/proc/self/statm, field 2).
inline size_t rss_bytes() {
  char buf[256];
  if (!read_proc("/proc/self/statm", buf, sizeof buf)) return 0;
  unsigned long size = 0, resident = 0;
  char* p = buf;
  size = strtoul(p, &p, 10);
  resident = strtoul(p, &p, 10);
  (void)size;
  return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

// A "Vm...:  1234 kB" field of /proc/self/status, in bytes (0 if absent).
inline size_t status_field(const char* field) {
  char buf[4096];
  if (!read_proc("/proc/self/status", buf, sizeof buf)) return 0;
  const char* p = strstr(buf, field);
  if (!p) return 0;
  p += strlen(field);
  while (*p == ':' || *p == ' ' || *p == '\t') p++;
  return (size_t)strtoull(p, nullptr, 10) * 1024;
}

inline size_t hwm_bytes() { return status_field("VmHWM"); }

// Reset the process's VmHWM to the current RSS (Linux >= 4.0:
// "echo 5 > /proc/self/clear_refs").  Returns false where not permitted.
inline bool reset_hwm() {
  int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

constexpr double kMiB = 1024.0 * 1024.0;

// Every benchmark reports the process RSS at its end as "rss_MiB".  Only
// thread 0 sets it: Google Benchmark sums counters over threads.
inline void report_rss(benchmark::State& st) {
  if (st.thread_index() == 0)
    st.counters["rss_MiB"] = benchmark::Counter((double)rss_bytes() / kMiB);
}

// ---------------------------------------------------------------- timing

inline int64_t now_ns() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// Throughput of a run with Google Benchmark's own threads (->Threads(n)).
//
// Google Benchmark times every thread from the common start barrier to the
// end of that thread's own loop and reports the *average* over threads.
// With more threads than CPUs the threads do not finish together (the
// scheduler lets some run to completion first), so the average understates
// the elapsed time and overstates throughput, by up to ~2x for short runs.
// We measure the makespan instead: from the latest thread's arrival at the
// start barrier (the barrier opens right after it) to the last thread's
// end, and report items_per_second = items of all threads / makespan.
// The shared state is reset by span_reset(), registered as the benchmark's
// Setup hook (called once per run, before its threads start).
struct Span {
  std::atomic<int64_t> start{0}, end{0}, items{0};
  std::atomic<int> done{0};
};
extern Span g_span;

inline void span_reset(const benchmark::State&) {
  g_span.start = 0;
  g_span.end = 0;
  g_span.items = 0;
  g_span.done = 0;
}

inline void atomic_max(std::atomic<int64_t>& a, int64_t v) {
  int64_t cur = a.load(std::memory_order_relaxed);
  while (cur < v && !a.compare_exchange_weak(cur, v)) {
  }
}

// Construct right before `for (auto _ : st)`; call finish() right after.
class ThreadSpan {
 public:
  explicit ThreadSpan(benchmark::State& st) : st_(st) { atomic_max(g_span.start, now_ns()); }
  void finish(int64_t items) {
    atomic_max(g_span.end, now_ns());
    g_span.items += items;
    if (g_span.done.fetch_add(1) + 1 == st_.threads()) {  // the last thread
      double secs = (double)(g_span.end.load() - g_span.start.load()) * 1e-9;
      if (secs > 0)
        st_.counters["items_per_second"] = benchmark::Counter((double)g_span.items.load() / secs);
    }
  }

 private:
  benchmark::State& st_;
};

// Touch one byte per `stride` bytes (page faults are part of the cost of
// large allocations: an allocator that caches memory avoids them).
inline void touch(void* p, size_t size, size_t stride = 4096) {
  volatile char* c = (volatile char*)p;
  for (size_t off = 0; off < size; off += stride) c[off] = 1;
  if (size) c[size - 1] = 1;
}

// Sink a pointer without generating code (keeps allocations alive for the
// optimiser, unlike a volatile store it costs no instruction).
inline void escape(void* p) { asm volatile("" : : "g"(p) : "memory"); }

// Run fn(i) on n fresh threads and join them.
template <class F>
void run_threads(int n, F fn) {
  std::vector<std::thread> ts;
  ts.reserve((size_t)n);
  for (int i = 0; i < n; i++) ts.emplace_back(fn, i);
  for (auto& t : ts) t.join();
}

inline std::string tname(const std::string& base, int threads) {
  return base + "/threads:" + std::to_string(threads);
}

}  // namespace sb
