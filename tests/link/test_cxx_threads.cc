// test_cxx_threads.cc - standard containers used hard from 8 threads, with
// objects handed from thread to thread.
//
// usage: test_cxx_threads [MESSAGES_PER_THREAD] (default 1500)
//
// Each of 8 threads creates MESSAGES_PER_THREAD messages. A message holds a
// std::vector, a std::string, a std::map<int, std::string>, a
// std::unordered_map<std::string, long> and a std::shared_ptr to a Blob
// shared by 16 messages (created by different threads over time).
// Messages travel through per-thread queues (mutex + condition variable +
// std::deque of std::unique_ptr): at each of kHops hops, the receiving thread
// checks the message against its checksum, grows every container with data
// that depends only on (message id, hop) and forwards it to another thread
// chosen at random. After the last hop the receiver checks it and destroys
// it: so most blocks are freed by a thread that did not allocate them.
//
// Since the contents depend only on the message id, the final checksum of
// every message is known in advance; the test compares the sum over all
// messages with the sum computed on one thread. It also checks that every
// Blob was destroyed exactly once, that the sampled blocks are Strata's,
// and that nothing was lost in the queues.
// Built linked with libstrata.so and for LD_PRELOAD (see meson.build).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "link_common.h"

namespace {

constexpr int kThreads = 8;
constexpr int kHops = 8;

std::atomic<long> blobs_alive{0}, blobs_made{0}, blobs_destroyed{0};
std::atomic<long> not_strata{0}, damaged{0};

void expect_strata(const void *p) {
  if (p && link_owns(p) != 1) not_strata++;
}

// Shared by several messages; the last owner (any thread) destroys it.
struct Blob {
  std::vector<uint32_t> data;
  explicit Blob(uint32_t seed) : data(256 + seed % 512) {
    for (size_t i = 0; i < data.size(); i++) data[i] = seed * 2654435761u + (uint32_t)i;
    blobs_alive++;
    blobs_made++;
  }
  ~Blob() {
    blobs_alive--;
    blobs_destroyed++;
  }
  uint64_t sum() const {
    uint64_t s = 0;
    for (uint32_t v : data) s += v;
    return s;
  }
};

struct Message {
  long id;
  int hop = 0;
  std::vector<uint64_t> values;
  std::string text;
  std::map<int, std::string> by_hop;
  std::unordered_map<std::string, long> by_name;
  std::shared_ptr<Blob> blob;
  uint64_t checksum = 0;   // of everything above, updated at each hop
};

// Deterministic content: a function of (id, hop) only.
uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e5f5ULL);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 29);
}

uint64_t checksum_of(const Message &m) {
  uint64_t s = mix((uint64_t)m.id, (uint64_t)m.hop);
  for (uint64_t v : m.values) s = mix(s, v);
  for (unsigned char c : m.text) s = mix(s, c);
  for (const auto &kv : m.by_hop) s = mix(s, (uint64_t)kv.first * 1000003u + kv.second.size());
  // The unordered_map's order is unspecified: combine its entries with +.
  uint64_t u = 0;
  for (const auto &kv : m.by_name) u += mix(kv.second, kv.first.size());
  s = mix(s, u);
  if (m.blob) s = mix(s, m.blob->sum());
  return s;
}

// Grow every container with data that depends only on (id, hop).
void apply_hop(Message &m) {
  m.hop++;
  uint64_t r = mix((uint64_t)m.id, (uint64_t)m.hop);
  size_t nvalues = 10 + r % 60;
  for (size_t i = 0; i < nvalues; i++) m.values.push_back(mix(r, i));
  m.text.append(5 + r % 60, (char)('a' + m.hop));
  m.by_hop[m.hop] = std::string(20 + r % 100, (char)('A' + m.hop));
  for (int i = 0; i < 5; i++) m.by_name["key " + std::to_string(m.hop) + "/" + std::to_string(i)] = (long)(r % 1000) + i;
  if (m.hop == kHops / 2) {   // shrink halfway: frees in the middle of the trip
    m.values.resize(m.values.size() / 3);
    m.values.shrink_to_fit();
  }
  m.checksum = checksum_of(m);
}

// Blobs are shared by the 16 consecutive messages of one group.
std::shared_ptr<Blob> make_blob(long id) { return std::make_shared<Blob>((uint32_t)(id / 16)); }

// The final checksum of message `id`, computed on one thread.
uint64_t expected_final(long id, const std::shared_ptr<Blob> &blob) {
  Message m;
  m.id = id;
  m.blob = blob;
  m.checksum = checksum_of(m);
  while (m.hop < kHops) apply_hop(m);
  return m.checksum;
}

class Queue {
 public:
  void push(std::unique_ptr<Message> m) {
    {
      std::lock_guard<std::mutex> g(mu_);
      q_.push_back(std::move(m));
    }
    cv_.notify_one();
  }
  // nullptr when the queue is empty (after waiting up to 10 ms if `wait`).
  std::unique_ptr<Message> pop(bool wait) {
    std::unique_lock<std::mutex> g(mu_);
    if (q_.empty() && wait) cv_.wait_for(g, std::chrono::milliseconds(10));
    if (q_.empty()) return nullptr;
    std::unique_ptr<Message> m = std::move(q_.front());
    q_.pop_front();
    return m;
  }
  size_t size() {
    std::lock_guard<std::mutex> g(mu_);
    return q_.size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Message>> q_;
};

Queue queues[kThreads];
std::atomic<long> retired{0};
std::atomic<uint64_t> final_sum{0};

void worker(int self, long per_thread, long total) {
  uint64_t rng = 0x1234567ULL + (uint64_t)self;
  // Keep the group's blob between messages of one group (so a blob is
  // shared by messages that end up on all threads).
  std::shared_ptr<Blob> blob;
  long created = 0;
  uint64_t local_sum = 0;
  while (retired.load(std::memory_order_relaxed) < total) {
    // Create a message now and then, while some are left to create.
    if (created < per_thread) {
      long id = self * per_thread + created++;
      auto m = std::make_unique<Message>();
      m->id = id;
      if (id % 16 == 0 || !blob) blob = make_blob(id);
      m->blob = blob;
      m->checksum = checksum_of(*m);
      queues[rnd(&rng) % kThreads].push(std::move(m));
    }
    // Handle what arrived (wait for more only when there is nothing left
    // to create).
    for (int k = 0; k < 4; k++) {
      std::unique_ptr<Message> m = queues[self].pop(created == per_thread);
      if (!m) break;
      if (checksum_of(*m) != m->checksum) damaged++;
      if ((rnd(&rng) & 63) == 0) {   // sample the blocks behind the containers
        expect_strata(m.get());
        expect_strata(m->values.data());
        if (m->text.size() > 15) expect_strata(m->text.data());
        expect_strata(m->blob.get());
      }
      if (m->hop == kHops) {
        local_sum += m->checksum;
        m.reset();   // destroyed here, far from where it was allocated
        retired++;
      } else {
        apply_hop(*m);
        queues[rnd(&rng) % kThreads].push(std::move(m));
      }
    }
  }
  blob.reset();
  final_sum += local_sum;
}

}  // namespace

int main(int argc, char **argv) {
  link_setup("test_cxx_threads");
  long per_thread = argc > 1 ? atol(argv[1]) : 1500;
  if (per_thread < 1) link_die("usage: %s [MESSAGES_PER_THREAD]", argv[0]);
  long total = per_thread * kThreads;

  // The expected result, on this thread alone (blobs as the workers make
  // them: per group of 16 ids; ids of a thread are contiguous).
  uint64_t expected = 0;
  {
    std::shared_ptr<Blob> blob;
    for (long id = 0; id < total; id++) {
      if (id % 16 == 0 || id % per_thread == 0) blob = make_blob(id);
      expected += expected_final(id, blob);
    }
  }
  long blobs_before = blobs_made.load();
  CHECK(blobs_alive.load() == 0, "%ld blobs alive after the single-thread pass",
        blobs_alive.load());

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) threads.emplace_back(worker, t, per_thread, total);
  for (auto &t : threads) t.join();

  long made = blobs_made.load() - blobs_before;
  info("%d threads, %ld messages x %d hops, %ld shared blobs", kThreads,
         total, kHops, made);
  CHECK(retired.load() == total, "%ld messages retired, expected %ld", retired.load(), total);
  for (int t = 0; t < kThreads; t++)
    CHECK(queues[t].size() == 0, "queue %d still holds %zu messages", t, queues[t].size());
  CHECK(final_sum.load() == expected, "sum of final checksums %#llx, expected %#llx",
        (unsigned long long)final_sum.load(), (unsigned long long)expected);
  CHECK(damaged.load() == 0, "%ld messages were damaged in transit", damaged.load());
  CHECK(not_strata.load() == 0, "%ld sampled blocks were not Strata's", not_strata.load());
  CHECK(blobs_alive.load() == 0 && blobs_destroyed.load() == blobs_made.load(),
        "blobs: %ld made, %ld destroyed, %ld alive", blobs_made.load(), blobs_destroyed.load(),
        blobs_alive.load());
  return checks_result("test_cxx_threads");
}
