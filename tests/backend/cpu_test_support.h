#pragma once
// Shared by the CPU backend tests: random inputs (a fresh seed per test, printed on failure and
// reproducible with QWENVL_TEST_SEED=<seed>), element access in double for the naive
// references, and the list of instruction sets to run each op with.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_features.h"
#include "common/tensor_values.h"
#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"

namespace qwenvl::test {

inline uint64_t test_seed() {
  if (const char* env = std::getenv("QWENVL_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

// Every instruction set this CPU can run, scalar first.
inline std::vector<CpuIsa> supported_isas() {
  std::vector<CpuIsa> isas{CpuIsa::Scalar};
  if (int(best_cpu_isa()) >= int(CpuIsa::Avx2)) isas.push_back(CpuIsa::Avx2);
  if (int(best_cpu_isa()) >= int(CpuIsa::Avx512)) isas.push_back(CpuIsa::Avx512);
  return isas;
}

inline void set(Tensor& t, int64_t i, double v) {
  switch (t.dtype()) {
    case DType::F32:
      t.data<float>()[i] = float(v);
      break;
    case DType::BF16:
      t.data<uint16_t>()[i] = float_to_bf16(float(v));
      break;
    case DType::F16:
      t.data<uint16_t>()[i] = float_to_fp16(float(v));
      break;
    case DType::I32:
      t.data<int32_t>()[i] = int32_t(v);
      break;
    default:
      break;
  }
}

// Test fixture: a CPU backend, a seeded generator, the seed in every failure message.
class CpuTest : public ::testing::Test {
 protected:
  CpuTest() : seed_(test_seed()), rng_(seed_), trace_(__FILE__, __LINE__, seed_message()) {}
  ~CpuTest() override { set_cpu_isa(best_cpu_isa()); }

  std::string seed_message() const {
    return "random seed " + std::to_string(seed_) +
           " (rerun with QWENVL_TEST_SEED=" + std::to_string(seed_) + ")";
  }

  // Uniform in [lo, hi), never all zeros; rounded to the tensor's dtype.
  Tensor random(Shape shape, DType dtype, double lo = -1, double hi = 1) {
    Tensor t = Tensor::empty(shape, dtype);
    std::uniform_real_distribution<double> u(lo, hi);
    for (int64_t i = 0; i < t.numel(); ++i) set(t, i, u(rng_));
    return t;
  }
  int uniform_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }

  static Tensor copy(const Tensor& t) {
    Tensor c = Tensor::empty(t.shape(), t.dtype());
    std::memcpy(c.data(), t.data(), t.nbytes());
    return c;
  }

  uint64_t seed_;
  std::mt19937_64 rng_;
  ::testing::ScopedTrace trace_;
  CpuBackend backend_;
};

// |got - want| <= atol + rtol * scale[i] for every element; reports the first few misses.
inline void expect_close(const Tensor& got, const std::vector<double>& want,
                         const std::vector<double>& scale, double rtol, double atol,
                         const std::string& what) {
  ASSERT_EQ(got.numel(), int64_t(want.size())) << what;
  int misses = 0;
  for (int64_t i = 0; i < got.numel() && misses < 5; ++i) {
    const double g = get(got, i), err = std::abs(g - want[i]);
    const double tol = atol + rtol * (scale.empty() ? std::abs(want[i]) : scale[i]);
    if (!(err <= tol)) {
      ++misses;
      ADD_FAILURE() << what << ": element " << i << " is " << g << ", expected " << want[i]
                    << " (error " << err << ", tolerance " << tol << ")";
    }
  }
}

}  // namespace qwenvl::test
