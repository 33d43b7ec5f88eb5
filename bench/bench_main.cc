// strata_bench: allocator workloads on Google Benchmark.
//
// Usage: strata_bench [--threads=1,2,4,8,16] [--smoke] [--expect-malloc=S]
//                     [--benchmark_...]
//
//   --threads=LIST     thread counts to register for threaded workloads
//                      (default 1,2,4,8,16)
//   --smoke            tiny working sets, for `meson test` (numbers
//                      meaningless)
//   --expect-malloc=S  fail (exit 4) unless the shared object serving malloc
//                      has S in its path: a preload that did not take effect
//                      must not pass for a test of the preloaded allocator
//
// All --benchmark_* flags of Google Benchmark 1.7.1 work as usual (note
// --benchmark_min_time takes plain seconds there: 0.05, not 0.05s).
//
// The exit status is non-zero if any benchmark reported an error, if the
// filter matched nothing, or on bad arguments, so that a smoke test fails
// when the harness rots.  The allocator actually serving malloc (which
// LD_PRELOAD should have changed) is recorded in the JSON context as
// "malloc_provider".
#include "bench_common.h"

#include <dlfcn.h>

#include <cstdio>
#include <iostream>
#include <memory>

namespace sb {
Config g_cfg;
Span g_span;
}

namespace {

// Wraps the display reporter chosen by --benchmark_format and counts runs
// that reported an error (Google Benchmark 1.7.1 itself exits 0 then).
class ErrorCountingReporter : public benchmark::BenchmarkReporter {
 public:
  explicit ErrorCountingReporter(benchmark::BenchmarkReporter* inner) : inner_(inner) {}
  bool ReportContext(const Context& ctx) override { return inner_->ReportContext(ctx); }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred) {
        errors_++;
        std::cerr << "ERROR in " << r.benchmark_name() << ": " << r.error_message << "\n";
      }
    }
    inner_->ReportRuns(runs);
    inner_->GetOutputStream().flush();  // progress for a runner reading a pipe
  }
  void Finalize() override { inner_->Finalize(); }
  int errors() const { return errors_; }

 private:
  std::unique_ptr<benchmark::BenchmarkReporter> inner_;
  int errors_ = 0;
};

// JSON file reporter that flushes after every benchmark, so a process that
// crashes half-way still leaves the runs before the crash on disk.
class FlushingJSONReporter : public benchmark::JSONReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::JSONReporter::ReportRuns(runs);
    GetOutputStream().flush();
  }
};

// The shared object that provides the malloc this process calls.
std::string malloc_provider() {
  void* sym = dlsym(RTLD_DEFAULT, "malloc");
  Dl_info info;
  if (sym && dladdr(sym, &info) && info.dli_fname) return info.dli_fname;
  return "unknown";
}

bool parse_threads(const char* s, std::vector<int>& out) {
  out.clear();
  while (*s) {
    char* end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 1024) return false;
    out.push_back((int)v);
    s = end;
    if (*s == ',') s++;
    else if (*s) return false;
  }
  return !out.empty();
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flags first; Google Benchmark rejects unknown ones.
  int k = 1;
  bool list = false, out = false, out_json = true;
  const char* expect = nullptr;
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--threads=", 10) == 0) {
      if (!parse_threads(argv[i] + 10, sb::g_cfg.threads)) {
        fprintf(stderr, "strata_bench: bad --threads list: %s\n", argv[i] + 10);
        return 2;
      }
    } else if (strcmp(argv[i], "--smoke") == 0) {
      sb::g_cfg.smoke = true;
    } else if (strncmp(argv[i], "--expect-malloc=", 16) == 0) {
      expect = argv[i] + 16;
    } else {
      if (strncmp(argv[i], "--benchmark_list_tests", 22) == 0 &&
          strcmp(argv[i], "--benchmark_list_tests=false") != 0)
        list = true;
      if (strncmp(argv[i], "--benchmark_out=", 16) == 0) out = argv[i][16] != 0;
      if (strncmp(argv[i], "--benchmark_out_format=", 23) == 0)
        out_json = strcmp(argv[i] + 23, "json") == 0;
      argv[k++] = argv[i];
    }
  }
  argc = k;
  argv[argc] = nullptr;

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  // Registration order is the order of the workload list.
  sb::register_basic();    // 1, 2
  sb::register_threads();  // 3, 4, 5
  sb::register_memory();   // 6, 7
  sb::register_churn();    // 8

  std::string threads;
  for (int t : sb::g_cfg.threads) threads += (threads.empty() ? "" : ",") + std::to_string(t);
  const std::string provider = malloc_provider();
  if (expect && provider.find(expect) == std::string::npos) {
    fprintf(stderr, "strata_bench: malloc is served by %s, not by a library matching \"%s\" "
            "(LD_PRELOAD=%s)\n", provider.c_str(), expect,
            getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
    return 4;
  }
  benchmark::AddCustomContext("malloc_provider", provider);
  benchmark::AddCustomContext("strata_bench_threads", threads);
  benchmark::AddCustomContext("strata_bench_smoke", sb::g_cfg.smoke ? "1" : "0");

  ErrorCountingReporter reporter(benchmark::CreateDefaultDisplayReporter());
  FlushingJSONReporter json_out;
  size_t n = benchmark::RunSpecifiedBenchmarks(&reporter, out && out_json ? &json_out : nullptr);
  benchmark::Shutdown();
  if (list) return 0;
  if (n == 0) {
    fprintf(stderr, "strata_bench: no benchmark matched the filter\n");
    return 3;
  }
  if (reporter.errors()) {
    fprintf(stderr, "strata_bench: %d benchmark run(s) reported errors\n", reporter.errors());
    return 1;
  }
  return 0;
}
