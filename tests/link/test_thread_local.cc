// test_thread_local.cc - C++ thread_local objects whose constructors and
// destructors allocate, in threads that exit.
//
// usage: test_thread_local [ROUNDS] [THREADS] (defaults 20 and 50)
//
// Each thread touches 20 distinct thread_local objects (Slot<0>::obj ...
// Slot<19>::obj). Each object holds a string, a vector and a 16 KiB buffer
// from new[]; its destructor, which runs when the thread exits, checks the
// contents, allocates and frees some more (malloc, new, a std::string), and
// frees everything. A pthread key destructor allocates and frees as well; it
// runs after the thread_local destructors and, since our key is created
// after Strata's, after Strata has torn down the thread's cache.
//
// ROUNDS x THREADS threads are run (THREADS at a time), so 20 x 50 x 20 =
// 20,000 thread_local objects in 1,000 threads by default. The test checks that
//   - every object was constructed and destroyed exactly once, intact;
//   - every block involved is Strata's (strata_owns);
//   - resident memory after the last round is within 64 MiB of the memory
//     after the first (each thread holds 20 x ~17 KiB; a per-thread leak of
//     what a thread frees, or of the thread's cache, grows by >= 300 MiB);
//   - the main thread's own thread_local objects are destroyed cleanly at
//     exit (an atexit handler, which runs after them, checks the counters).
// Built linked with libstrata.so and for LD_PRELOAD (see meson.build).
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "link_common.h"

namespace {

constexpr int kSlots = 20;               // thread_local objects per thread
constexpr size_t kBuffer = 16 * 1024;    // bytes of new[] per object

std::atomic<long> constructed{0}, destroyed{0}, bad{0}, not_strata{0};
std::atomic<long> key_dtor_runs{0};

void expect_strata(const void *p) {
  if (p && link_owns(p) != 1) not_strata++;
}

struct TLObject {
  int slot;
  std::string name;           // longer than the small-string buffer
  std::vector<int> values;
  char *buffer;

  explicit TLObject(int s) : slot(s) {
    name = "thread_local object in slot " + std::to_string(s) + " of thread " +
           std::to_string((uintptr_t)pthread_self());
    values.resize(100 + s * 10);
    for (size_t i = 0; i < values.size(); i++) values[i] = (int)i * s;
    buffer = new char[kBuffer];
    memset(buffer, 'a' + s, kBuffer);
    expect_strata(name.data());
    expect_strata(values.data());
    expect_strata(buffer);
    constructed++;
  }

  ~TLObject() {
    // Contents intact?
    bool ok = name.compare(0, 28, "thread_local object in slot ") == 0 &&
              values.size() == (size_t)(100 + slot * 10);
    for (size_t i = 0; ok && i < values.size(); i++) ok = values[i] == (int)i * slot;
    for (size_t i = 0; ok && i < kBuffer; i += 512) ok = buffer[i] == 'a' + slot;
    if (!ok) bad++;
    // Allocate during thread exit: malloc, new, a string, a vector growth.
    void *m = malloc(64 + slot * 100);
    int *n = new int[slot + 1];
    std::string s(200, 'x');
    std::vector<long> v;
    for (int i = 0; i < 300; i++) v.push_back(i);
    expect_strata(m);
    expect_strata(n);
    expect_strata(s.data());
    expect_strata(v.data());
    free(m);
    delete[] n;
    delete[] buffer;
    destroyed++;
  }
};

// One distinct thread_local variable per slot: a static member of a class
// template, instantiated for 0..kSlots-1.
template <int I>
struct Slot {
  static thread_local TLObject obj;
};
template <int I>
thread_local TLObject Slot<I>::obj{I};

// Touch every slot (the first use of a thread_local constructs it).
template <int... I>
long touch_all(std::integer_sequence<int, I...>) {
  return (0L + ... + (long)Slot<I>::obj.values.size());
}

// A pthread key whose destructor allocates and frees at thread exit.
pthread_key_t late_key;
void late_key_destructor(void *arg) {
  void *p = malloc(1000);
  std::string *s = new std::string(100, 'k');
  expect_strata(p);
  expect_strata(s);
  delete s;
  free(p);
  free(arg);   // a block the thread allocated while alive
  key_dtor_runs++;
}

void *thread_main(void *) {
  long total = touch_all(std::make_integer_sequence<int, kSlots>{});
  // sum over s of (100 + 10 s) = 20 * 100 + 10 * 190
  if (total != kSlots * 100 + 10 * (kSlots * (kSlots - 1) / 2)) bad++;
  pthread_setspecific(late_key, malloc(333));
  return nullptr;
}

// Runs after the main thread's thread_local destructors (exit() calls those
// first, then the atexit handlers).
long expected_objects;
void at_exit_check() {
  long c = constructed.load(), d = destroyed.load();
  if (c != expected_objects || d != expected_objects || bad.load() || not_strata.load()) {
    failf("at exit: %ld constructed, %ld destroyed (expected %ld), %ld damaged, %ld not Strata's",
          c, d, expected_objects, bad.load(), not_strata.load());
    give_up();
  }
  info("at exit: all %ld thread_local objects destroyed cleanly", d);
}

}  // namespace

int main(int argc, char **argv) {
  link_setup("test_thread_local");
  int rounds = argc > 1 ? atoi(argv[1]) : 20;
  int nthreads = argc > 2 ? atoi(argv[2]) : 50;
  if (rounds < 1 || nthreads < 1) link_die("usage: %s [ROUNDS] [THREADS]", argv[0]);
  if (pthread_key_create(&late_key, late_key_destructor)) link_die("pthread_key_create failed");

  long rss_first = 0;
  std::vector<pthread_t> tids(nthreads);
  for (int r = 0; r < rounds; r++) {
    for (int t = 0; t < nthreads; t++) {
      // A small stack: the test is about the heap, not thread stacks.
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstacksize(&attr, 256 * 1024);
      int err = pthread_create(&tids[t], &attr, thread_main, nullptr);
      pthread_attr_destroy(&attr);
      if (err) link_die("pthread_create: %s", strerror(err));
    }
    for (int t = 0; t < nthreads; t++) pthread_join(tids[t], nullptr);
    if (r == 0) rss_first = status_kib("VmRSS:");
  }
  long threads = (long)rounds * nthreads;
  long rss_last = status_kib("VmRSS:");
  info("%ld threads x %d thread_local objects = %ld objects; "
       "RSS after round 1: %ld KiB, after round %d: %ld KiB",
       threads, kSlots, threads * kSlots, rss_first, rounds, rss_last);

  CHECK(constructed.load() == threads * kSlots, "%ld objects constructed, expected %ld",
        constructed.load(), threads * kSlots);
  CHECK(destroyed.load() == threads * kSlots, "%ld objects destroyed, expected %ld",
        destroyed.load(), threads * kSlots);
  CHECK(bad.load() == 0, "%ld objects were damaged", bad.load());
  CHECK(not_strata.load() == 0, "%ld blocks were not Strata's", not_strata.load());
  CHECK(key_dtor_runs.load() == threads, "the key destructor ran %ld times, expected %ld",
        key_dtor_runs.load(), threads);
  CHECK(rss_last - rss_first < 64 * 1024, "resident memory grew by %ld KiB over %d rounds",
        rss_last - rss_first, rounds);

  // The main thread gets thread_local objects too; they are destroyed in
  // exit(), before at_exit_check runs.
  touch_all(std::make_integer_sequence<int, kSlots>{});
  expected_objects = (threads + 1) * kSlots;
  atexit(at_exit_check);

  // On a failure, skip the exit-time check: it would only repeat the news.
  if (checks_result("test_thread_local")) _exit(1);
  return 0;
}
