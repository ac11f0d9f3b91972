// How fast the CPU backend's threads stream host memory: the pool sums a buffer larger than the
// caches, each thread its own contiguous part, as the CPU's products read weight rows. The best
// of a few passes after a warm-up.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

constexpr size_t kProbeBytes = size_t(512) << 20;
constexpr int kRepetitions = 3;

}  // namespace

double cpu_measure_host_read_bandwidth() {
  const size_t words = kProbeBytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  ThreadPool& pool = ThreadPool::global();
  pool.parallel_for(int64_t(words), 1 << 16, [&](int64_t begin, int64_t end) {
    std::fill(buffer.get() + begin, buffer.get() + end, uint64_t(begin));
  });
  std::atomic<uint64_t> total{0};  // the sums are used, so the reads are not elided
  double best = 0;
  for (int i = 0; i <= kRepetitions; ++i) {
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_for(int64_t(words), 1 << 16, [&](int64_t begin, int64_t end) {
      // Four independent sums, so the loop is bound by loads rather than one add chain.
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int64_t j = begin;
      for (; j + 4 <= end; j += 4) {
        s0 += buffer[size_t(j)];
        s1 += buffer[size_t(j + 1)];
        s2 += buffer[size_t(j + 2)];
        s3 += buffer[size_t(j + 3)];
      }
      for (; j < end; ++j) s0 += buffer[size_t(j)];
      total.fetch_add(s0 + s1 + s2 + s3, std::memory_order_relaxed);
    });
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i > 0) best = std::max(best, double(kProbeBytes) / std::max(seconds, 1e-6));
  }
  volatile uint64_t sink = total.load();
  (void)sink;
  return best;
}

}  // namespace qwenvl
