// dl_module.cc - a plug-in for test_dlopen_loop: it allocates when it is
// loaded and frees when it is unloaded, in two ways:
//   - a C-style constructor/destructor pair (__attribute__((constructor)))
//     using malloc/calloc/realloc/free;
//   - a C++ static object whose constructor and destructor use new/delete
//     and standard containers (its destructor is registered with
//     __cxa_atexit for this module and runs at dlclose).
// Sizes range from 1 byte to more than 16 MiB (Strata's huge threshold), so
// every tier of the allocator is used and released on each load/unload.
//
// The module links no allocator: malloc and operator new reach whatever the
// process uses (Strata, by preload or by the program's link).
//
// Interface (extern "C", resolved by the test with dlsym):
//   int  module_check(int (*owns)(const void *));  // errors found (0 = ok)
//   void module_set_report(struct module_report *); // where the destructors
//                                                   // write their results
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dl_module.h"

namespace {

// Sizes for the C-style blocks: tiny (< 64 B), small, medium, large, and two
// above 16 MiB.
const size_t kSizes[] = {1, 8, 15, 16, 24, 48, 63, 64, 100, 1000, 4096, 40000,
                         300000, 1 << 20, 5 << 20, (16 << 20) + 4096, 24 << 20};
const int kCount = sizeof kSizes / sizeof kSizes[0];
const size_t kStride = 4 << 20;   // sampling step inside big blocks

void *c_blocks[kCount];          // from the C constructor
module_report *report;           // set by the test after dlopen
int ctor_errors;                 // problems seen while loading

// Fill a block with a pattern that depends on its index and size: every byte
// of small blocks, and for big ones the first and last 4 KiB plus one byte
// every 4 MiB. Page faults are what a load costs (with transparent huge
// pages one touched byte clears 2 MiB), and 200 loads must stay fast, so the
// big blocks are only sampled.
unsigned char pattern(int idx, size_t off) {
  return (unsigned char)(idx * 31 + off * 7 + (off >> 12));
}
void fill(unsigned char *p, int idx, size_t n) {
  if (n <= 16384) {
    for (size_t i = 0; i < n; i++) p[i] = pattern(idx, i);
    return;
  }
  for (size_t i = 0; i < 4096; i++) p[i] = pattern(idx, i);
  for (size_t i = n - 4096; i < n; i++) p[i] = pattern(idx, i);
  for (size_t i = 4096; i < n - 4096; i += kStride) p[i] = pattern(idx, i);
}
int verify(const unsigned char *p, int idx, size_t n) {
  if (n <= 16384) {
    for (size_t i = 0; i < n; i++)
      if (p[i] != pattern(idx, i)) return 1;
    return 0;
  }
  for (size_t i = 0; i < 4096; i++)
    if (p[i] != pattern(idx, i)) return 1;
  for (size_t i = n - 4096; i < n; i++)
    if (p[i] != pattern(idx, i)) return 1;
  for (size_t i = 4096; i < n - 4096; i += kStride)
    if (p[i] != pattern(idx, i)) return 1;
  return 0;
}

// ---- C-style constructor and destructor ----------------------------------
__attribute__((constructor)) void module_ctor() {
  for (int i = 0; i < kCount; i++) {
    // Mix the entry points: calloc for some, malloc+realloc for others.
    unsigned char *p;
    if (i % 3 == 0) {
      p = static_cast<unsigned char *>(calloc(1, kSizes[i]));
      if (p && (p[0] != 0 || p[kSizes[i] - 1] != 0)) ctor_errors++;
    } else if (i % 3 == 1) {
      // Grow from a smaller block (at most 4 KiB: copying more would only
      // cost time), across size classes and tiers.
      size_t first = kSizes[i] / 2 + 1 < 4096 ? kSizes[i] / 2 + 1 : 4096;
      p = static_cast<unsigned char *>(malloc(first));
      if (p) memset(p, 0xab, first);
      unsigned char *q = static_cast<unsigned char *>(realloc(p, kSizes[i]));
      if (q && q[first - 1] != 0xab) ctor_errors++;   // realloc kept the contents
      if (!q) free(p);
      p = q;
    } else {
      p = static_cast<unsigned char *>(malloc(kSizes[i]));
    }
    if (!p) {
      fprintf(stderr, "dl_module: allocation of %zu bytes failed\n", kSizes[i]);
      ctor_errors++;
      continue;
    }
    fill(p, i, kSizes[i]);
    c_blocks[i] = p;
  }
}

__attribute__((destructor)) void module_dtor() {
  int errors = 0;
  for (int i = 0; i < kCount; i++) {
    if (c_blocks[i] && verify(static_cast<unsigned char *>(c_blocks[i]), i, kSizes[i])) {
      fprintf(stderr, "dl_module: block %d (%zu bytes) damaged at unload\n", i, kSizes[i]);
      errors++;
    }
    free(c_blocks[i]);
    c_blocks[i] = nullptr;
  }
  if (report) {
    report->c_dtor_runs++;
    report->errors += errors;
  }
}

// ---- C++ static object ------------------------------------------------------
struct StaticState {
  std::vector<std::string> words;                 // many small blocks
  std::map<int, std::unique_ptr<int[]>> arrays;   // new[] of several sizes
  std::unique_ptr<char[]> big;                    // > 16 MiB, via new[]
  std::shared_ptr<std::vector<uint64_t>> shared;  // make_shared control block
  static constexpr size_t kBig = (17 << 20) + 123;
  int errors = 0;

  StaticState() {
    for (int i = 0; i < 200; i++)
      words.push_back("word number " + std::to_string(i) + std::string(i % 50, 'x'));
    for (int n : {1, 3, 15, 100, 5000, 70000}) {
      std::unique_ptr<int[]> a(new int[n]);
      for (int i = 0; i < n; i++) a[i] = n + i;
      arrays[n] = std::move(a);
    }
    big.reset(new char[kBig]);
    for (size_t i = 0; i < kBig; i += kStride) big[i] = (char)(i >> 12);
    big[kBig - 1] = 'Z';
    shared = std::make_shared<std::vector<uint64_t>>(1000, 0x5eedULL);
  }
  // Errors found in the contents (used at load and at unload).
  int check() const {
    int e = 0;
    if (words.size() != 200) e++;
    for (int i = 0; i < (int)words.size(); i++)
      if (words[i] != "word number " + std::to_string(i) + std::string(i % 50, 'x')) e++;
    for (const auto &kv : arrays)
      for (int i = 0; i < kv.first; i++)
        if (kv.second[i] != kv.first + i) { e++; break; }
    for (size_t i = 0; i < kBig; i += kStride)
      if (big[i] != (char)(i >> 12)) { e++; break; }
    if (big[kBig - 1] != 'Z') e++;
    if (!shared || shared->size() != 1000 || (*shared)[999] != 0x5eedULL) e++;
    return e;
  }
  ~StaticState() {
    int e = check();
    if (e) fprintf(stderr, "dl_module: C++ static object damaged at unload (%d)\n", e);
    if (report) {
      report->cxx_dtor_runs++;
      report->errors += e;
    }
    // The members are freed after this body: delete, delete[], free.
  }
};

StaticState state;

}  // namespace

extern "C" __attribute__((visibility("default"))) int module_check(int (*owns)(const void *)) {
  int e = ctor_errors + state.check();
  for (int i = 0; i < kCount; i++) {
    if (!c_blocks[i] || verify(static_cast<unsigned char *>(c_blocks[i]), i, kSizes[i])) e++;
    if (c_blocks[i] && owns(c_blocks[i]) != 1) {
      fprintf(stderr, "dl_module: block %d (%zu bytes) at %p is not Strata's\n", i, kSizes[i],
              c_blocks[i]);
      e++;
    }
  }
  if (owns(state.big.get()) != 1) e++;
  if (owns(state.words[199].data()) != 1) e++;
  if (owns(state.arrays.at(70000).get()) != 1) e++;
  if (owns(state.shared.get()) != 1) e++;
  return e;
}

extern "C" __attribute__((visibility("default"))) void module_set_report(module_report *r) {
  report = r;
}
