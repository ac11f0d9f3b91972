// linear with FP8 weights (backend/packed_fp8.h) against a double-precision product over the
// dequantized values code · scale, and against linear over the same values as an f32 weight, on
// both sides of the decode / sgemm switch, every instruction set.
#include "backend/packed_fp8.h"
#include "core/thread_pool.h"
#include "cpu_test_support.h"

namespace qwenvl::test {
namespace {

class CpuLinearFp8Test : public CpuTest {
 protected:
  struct Weight {
    Tensor packed;  // F8E4M3
    Tensor values;  // f32 [n, k]: code · scale
  };

  // Rows of different magnitudes (each row's own scale matters), one all zero when n > 2.
  Weight random_weight(int64_t n, int64_t k) {
    Tensor w = Tensor::empty({n, k}, DType::BF16);
    for (int64_t j = 0; j < n; ++j) {
      const double magnitude = j == 2 ? 0.0 : std::ldexp(1.0, uniform_int(-8, 2));
      for (int64_t i = 0; i < k; ++i) set(w, j * k + i, uniform(-1, 1) * magnitude);
    }
    Weight out{quantize_fp8(w, "test weight"), Tensor::empty({n, k}, DType::F32)};
    const Fp8Layout layout = Fp8Layout::of(out.packed);
    for (int64_t j = 0; j < n; ++j)
      dequantize_fp8_columns(out.packed.data<uint8_t>() + j * layout.row_bytes(), layout, 0, k,
                             out.values.data<float>() + j * k);
    return out;
  }

  void check(int64_t m, int64_t k, int64_t n, bool with_bias) {
    SCOPED_TRACE(cat("M=", m, " K=", k, " N=", n, " bias=", with_bias,
                     " isa=", cpu_isa_name(active_cpu_isa())));
    const Weight w = random_weight(n, k);
    Tensor x = random({m, k}, DType::F32);
    Tensor b = random({n}, DType::BF16);
    Tensor out = Tensor::empty({m, n}, DType::F32);
    backend_.linear(x, w.packed, with_bias ? &b : nullptr, out);
    std::vector<double> want(size_t(m * n)), scale(size_t(m * n));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double s = with_bias ? get(b, j) : 0, a = std::abs(s);
        for (int64_t i = 0; i < k; ++i) {
          const double p = get(x, r * k + i) * get(w.values, j * k + i);
          s += p;
          a += std::abs(p);
        }
        want[size_t(r * n + j)] = s;
        scale[size_t(r * n + j)] = a;
      }
    expect_close(out, want, scale, 1e-5, 1e-7, "fp8 linear");

    // The same values as an f32 weight: equal up to fp32 rounding of the sums.
    Tensor out_f32 = Tensor::empty({m, n}, DType::F32);
    backend_.linear(x, w.values, with_bias ? &b : nullptr, out_f32);
    std::vector<double> f32(size_t(m * n));
    for (int64_t i = 0; i < m * n; ++i) f32[size_t(i)] = out_f32.data<float>()[i];
    expect_close(out, f32, scale, 1e-5, 1e-7, "fp8 linear vs f32 linear");
  }
};

TEST_F(CpuLinearFp8Test, MatchesTheDequantizedWeightForEveryShapeAndIsa) {
  const int64_t shapes[][3] = {{1, 256, 16},  {1, 640, 37},   {2, 192, 5},
                               {3, 16, 9},    {4, 96, 70},    {8, 1024, 33},
                               {9, 768, 131}, {40, 640, 300}, {17, 528, 9}};
  for (CpuIsa isa : supported_isas()) {
    set_cpu_isa(isa);
    for (auto& s : shapes) check(s[0], s[1], s[2], uniform_int(0, 1) == 1);
  }
}

TEST_F(CpuLinearFp8Test, OddThreadCountsSplitTheWorkCorrectly) {
  for (int threads : {3, 5}) {
    ThreadPool::set_global_threads(threads);
    check(1, 512, 333, true);
    check(70, 512, 333, false);
  }
  ThreadPool::set_global_threads(0);
}

// q/k/v and gate/up are stacked along their rows at load; a row block of the stacked weight is
// the part it came from.
TEST_F(CpuLinearFp8Test, StackedWeightsMultiplyAsTheirParts) {
  const Weight a = random_weight(24, 256), b = random_weight(40, 256);
  backend_.reserve(1 << 20, 0, 0);
  const Tensor stacked = backend_.upload_weight_stacked({a.packed, b.packed}, DType::F8E4M3);
  ASSERT_EQ(stacked.dim(0), 64);
  Tensor x = random({3, 256}, DType::F32);
  Tensor both = Tensor::empty({3, 64}, DType::F32), part = Tensor::empty({3, 40}, DType::F32);
  backend_.linear(x, stacked, nullptr, both);
  backend_.linear(x, b.packed, nullptr, part);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t j = 0; j < 40; ++j)
      EXPECT_EQ(both.data<float>()[r * 64 + 24 + j], part.data<float>()[r * 40 + j]);
}

// The scale of the product is the weight's: a row scaled by 2^s gives the product times 2^s.
TEST_F(CpuLinearFp8Test, FollowsTheWeightsScaleAcrossMagnitudes) {
  const int64_t k = 64;
  Tensor w = Tensor::empty({2, k}, DType::F32);
  for (int64_t i = 0; i < k; ++i) {
    const float v = float(uniform(-1, 1));
    w.data<float>()[i] = v;
    w.data<float>()[k + i] = v * 0x1p-20f;
  }
  const Tensor packed = quantize_fp8(w, "w");
  Tensor x = random({1, k}, DType::F32), out = Tensor::empty({1, 2}, DType::F32);
  backend_.linear(x, packed, nullptr, out);
  EXPECT_FLOAT_EQ(out.data<float>()[1], out.data<float>()[0] * 0x1p-20f);
}

}  // namespace
}  // namespace qwenvl::test
