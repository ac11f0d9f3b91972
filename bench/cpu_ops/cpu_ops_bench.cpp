// Times the CPU backend's linear at the two regimes that matter, per instruction set:
//   decode  M=1,   K=2048, N=11008, bf16 weights: GB/s of weight read, against a plain
//           streaming read of the same bytes (the machine's memory roofline, measured here);
//   prefill M=512, same weight: GFLOP/s, against one OpenBLAS-threaded sgemm on an fp32 copy of
//           the weight (the conversion-free ideal, and the "let OpenBLAS thread" alternative).
// Decode cycles through enough copies of the weight to exceed the last-level cache, as a model's
// layers do. Every kernel is checked against a double-precision dot product before it is timed.
// Then the same weight as FP8 (--quantize fp8): the time to quantize it (what loading pays), and
// decode over the FP8 rows, checked against the bf16 product (FP8's own error is a few percent).
// Usage: cpu_ops_bench [threads]
#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_features.h"
#include "backend/packed_fp8.h"
#include "core/half.h"
#include "core/thread_pool.h"

using namespace qwenvl;

namespace {

template <typename Fn>
double best_seconds(Fn&& fn, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

bool validate(const Tensor& x, const Tensor& w, const Tensor& out, int64_t m, int64_t k,
              int64_t n) {
  for (int64_t r : {int64_t(0), m - 1})
    for (int64_t j : {int64_t(0), n / 2, n - 1}) {
      double s = 0, a = 0;
      for (int64_t i = 0; i < k; ++i) {
        const double p =
            double(x.data<float>()[r * k + i]) * bf16_to_float(w.data<uint16_t>()[j * k + i]);
        s += p;
        a += std::abs(p);
      }
      if (std::abs(out.data<float>()[r * n + j] - s) > 1e-5 * a + 1e-6) {
        std::printf("MISMATCH at [%ld, %ld]: %g vs %g\n", long(r), long(j),
                    out.data<float>()[r * n + j], s);
        return false;
      }
    }
  return true;
}

// Reads `bytes` as fast as the core can (AVX2 loads, four chains) and folds them into one word.
__attribute__((target("avx2"))) uint64_t read_avx2(const char* p, size_t bytes) {
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (size_t i = 0; i + 128 <= bytes; i += 128) {
    a = _mm256_xor_si256(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_xor_si256(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_xor_si256(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_xor_si256(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
  return uint64_t(_mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 3));
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 0;
  ThreadPool::set_global_threads(threads);
  const int64_t k = 2048, n = 11008, m_prefill = 512;
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-1, 1);
  constexpr int kCopies = 8;  // 8 × 45 MB: far beyond any last-level cache
  std::vector<Tensor> copies;
  for (int c = 0; c < kCopies; ++c) {
    Tensor wc = Tensor::empty({n, k}, DType::BF16);
    for (int64_t i = 0; i < wc.numel(); ++i) wc.data<uint16_t>()[i] = float_to_bf16(u(rng) * 0.05f);
    copies.push_back(wc);
  }
  const Tensor& w = copies[0];
  Tensor x = Tensor::empty({m_prefill, k}, DType::F32);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = u(rng);
  Tensor out = Tensor::empty({m_prefill, n}, DType::F32);
  CpuBackend cpu;
  const double weight_bytes = double(w.nbytes());
  std::printf("linear K=%ld N=%ld bf16, %d threads\n", long(k), long(n),
              ThreadPool::global().size());

  // Memory roofline: the threads read their shares of every copy.
  std::vector<uint64_t> sinks(64);
  const double stream_s =
      best_seconds(
          [&] {
            for (const Tensor& wc : copies)
              ThreadPool::global().parallel_for(
                  int64_t(wc.nbytes() / 4096), 16, [&](int64_t b, int64_t e) {
                    sinks[size_t(b % 64)] += read_avx2(
                        static_cast<const char*>(wc.data()) + b * 4096, size_t(e - b) * 4096);
                  });
          },
          10) /
      kCopies;
  std::printf("  streaming read of the weight: %.1f GB/s (roofline)\n",
              weight_bytes / stream_s / 1e9);

  Tensor w32 = Tensor::empty({n, k}, DType::F32);
  for (int64_t i = 0; i < w.numel(); ++i)
    w32.data<float>()[i] = bf16_to_float(w.data<uint16_t>()[i]);
  Tensor x512 = x.rows(0, m_prefill), out512 = out.rows(0, m_prefill);
  const double flops = 2.0 * double(m_prefill) * double(n) * double(k);
  // The reference: one OpenBLAS call over the whole fp32 weight, threaded by OpenBLAS itself.
  openblas_set_num_threads(ThreadPool::global().size());
  const double ref_s = best_seconds(
      [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m_prefill), int(n), int(k), 1.0f,
                    x512.data<float>(), int(k), w32.data<float>(), int(k), 0.0f,
                    out512.data<float>(), int(n));
      },
      3);
  openblas_set_num_threads(1);
  std::printf("  prefill M=%ld, OpenBLAS sgemm on an fp32 copy: %.1f GFLOP/s\n", long(m_prefill),
              flops / ref_s / 1e9);

  for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2, CpuIsa::Avx512}) {
    if (int(isa) > int(best_cpu_isa())) continue;
    if (isa == CpuIsa::Scalar && !std::getenv("BENCH_SCALAR")) continue;
    set_cpu_isa(isa);
    for (int64_t m : {int64_t(1), int64_t(2), int64_t(4), int64_t(8), int64_t(16)}) {
      Tensor xm = x.rows(0, m), om = out.rows(0, m);
      cpu.linear(xm, w, nullptr, om);
      if (!validate(xm, w, om, m, k, n)) return 1;
      const double s = best_seconds(
                           [&] {
                             for (const Tensor& wc : copies) cpu.linear(xm, wc, nullptr, om);
                           },
                           10) /
                       kCopies;
      std::printf("  %-6s decode  M=%ld: %7.3f ms  %5.1f GB/s  (%.0f%% of roofline)\n",
                  std::string(cpu_isa_name(isa)).c_str(), long(m), s * 1e3, weight_bytes / s / 1e9,
                  100 * stream_s / s);
    }
    cpu.linear(x512, w, nullptr, out512);
    if (!validate(x512, w, out512, m_prefill, k, n)) return 1;
    const double s = best_seconds([&] { cpu.linear(x512, w, nullptr, out512); }, 3);
    std::printf("  %-6s prefill M=%ld: %7.1f ms  %5.1f GFLOP/s  (%.0f%% of OpenBLAS fp32)\n",
                std::string(cpu_isa_name(isa)).c_str(), long(m_prefill), s * 1e3, flops / s / 1e9,
                100 * ref_s / s);
  }

  std::vector<Tensor> fp8_copies;
  const double quantize_s =
      best_seconds([&] { fp8_copies.assign(1, quantize_fp8(w, "bench weight")); }, 3);
  std::printf("  quantize to fp8: %.1f ms, %.2f G values/s\n", quantize_s * 1e3,
              double(w.numel()) / quantize_s / 1e9);
  for (int c = 1; c < kCopies; ++c) fp8_copies.push_back(quantize_fp8(copies[size_t(c)], "bench"));
  const double fp8_bytes = double(fp8_copies[0].nbytes());
  for (CpuIsa isa : {CpuIsa::Scalar, CpuIsa::Avx2}) {
    if (int(isa) > int(best_cpu_isa())) continue;
    if (isa == CpuIsa::Scalar && !std::getenv("BENCH_SCALAR")) continue;
    set_cpu_isa(isa);
    for (int64_t m : {int64_t(1), int64_t(4)}) {
      Tensor xm = x.rows(0, m), om = out.rows(0, m);
      Tensor want = Tensor::empty({m, n}, DType::F32);
      cpu.linear(xm, w, nullptr, want);
      cpu.linear(xm, fp8_copies[0], nullptr, om);
      double err = 0, ref = 0;
      for (int64_t i = 0; i < m * n; ++i) {
        const double d = double(om.data<float>()[i]) - want.data<float>()[i];
        err += d * d;
        ref += double(want.data<float>()[i]) * want.data<float>()[i];
      }
      if (!(std::sqrt(err / ref) < 0.05)) {
        std::printf("FP8 MISMATCH: rel L2 %g against the bf16 product\n", std::sqrt(err / ref));
        return 1;
      }
      const double s = best_seconds(
                           [&] {
                             for (const Tensor& wc : fp8_copies) cpu.linear(xm, wc, nullptr, om);
                           },
                           10) /
                       kCopies;
      std::printf(
          "  %-6s fp8 decode M=%ld: %7.3f ms  %5.1f GB/s of fp8  (%.2fx the bf16 weight's "
          "time at the roofline)\n",
          std::string(cpu_isa_name(isa)).c_str(), long(m), s * 1e3, fp8_bytes / s / 1e9,
          s / stream_s);
    }
  }
  return 0;
}
