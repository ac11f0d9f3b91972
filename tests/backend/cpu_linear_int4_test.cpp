// linear with packed 4-bit weights (backend/packed_int4.h) against a double-precision product
// over the dequantized values (q - z) * s, and against linear over the same values as an f32
// weight, on both sides of the decode / sgemm switch, several group sizes, instruction sets.
#include "backend/packed_int4.h"
#include "core/thread_pool.h"
#include "cpu_test_support.h"

namespace qwenvl::test {
namespace {

class CpuLinearInt4Test : public CpuTest {
 protected:
  struct Weight {
    Tensor packed;  // Q4
    Tensor values;  // f32 [n, k]: (q - z) * s
  };

  Weight random_weight(int64_t n, int64_t k, int64_t group) {
    const Int4Layout layout = Int4Layout::make(n, k, group, "test weight");
    std::vector<uint8_t> q(size_t(n * k)), zeros(size_t(n * layout.groups()));
    std::vector<uint16_t> scales(zeros.size());
    for (auto& v : q) v = uint8_t(uniform_int(0, 15));
    for (auto& z : zeros) z = uint8_t(uniform_int(0, 15));
    for (auto& s : scales) s = float_to_fp16(float(uniform(0.001, 0.05)));
    Weight w{pack_int4(q.data(), zeros.data(), scales.data(), layout),
             Tensor::empty({n, k}, DType::F32)};
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < k; ++i) {
        const size_t g = size_t(j * layout.groups() + i / group);
        w.values.data<float>()[j * k + i] =
            (float(q[size_t(j * k + i)]) - float(zeros[g])) * fp16_to_float(scales[g]);
      }
    return w;
  }

  void check(int64_t m, int64_t k, int64_t n, int64_t group, bool with_bias) {
    SCOPED_TRACE(cat("M=", m, " K=", k, " N=", n, " group=", group, " bias=", with_bias,
                     " isa=", cpu_isa_name(active_cpu_isa())));
    const Weight w = random_weight(n, k, group);
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
    expect_close(out, want, scale, 1e-5, 1e-7, "int4 linear");

    // The same values as an f32 weight: equal up to fp32 rounding of the sums.
    Tensor out_f32 = Tensor::empty({m, n}, DType::F32);
    backend_.linear(x, w.values, with_bias ? &b : nullptr, out_f32);
    std::vector<double> f32(size_t(m * n));
    for (int64_t i = 0; i < m * n; ++i) f32[size_t(i)] = out_f32.data<float>()[i];
    expect_close(out, f32, scale, 1e-5, 1e-7, "int4 linear vs f32 linear");
  }
};

TEST_F(CpuLinearInt4Test, MatchesTheDequantizedWeightForEveryShapeGroupAndIsa) {
  const int64_t shapes[][4] = {{1, 256, 16, 128},  {1, 640, 37, 128},  {2, 192, 5, 64},
                               {4, 96, 70, 32},    {8, 1024, 33, 128}, {9, 768, 131, 128},
                               {40, 640, 300, 64}, {17, 130, 9, 2}};
  for (CpuIsa isa : supported_isas()) {
    set_cpu_isa(isa);
    for (auto& s : shapes) check(s[0], s[1], s[2], s[3], uniform_int(0, 1) == 1);
  }
}

TEST_F(CpuLinearInt4Test, OddThreadCountsSplitTheWorkCorrectly) {
  for (int threads : {3, 5}) {
    ThreadPool::set_global_threads(threads);
    check(1, 512, 333, 128, true);
    check(70, 512, 333, 128, false);
  }
  ThreadPool::set_global_threads(0);
}

// q/k/v and gate/up are stacked along their rows at load; a row block of the stacked weight is
// the part it came from.
TEST_F(CpuLinearInt4Test, StackedWeightsMultiplyAsTheirParts) {
  const Weight a = random_weight(24, 256, 128), b = random_weight(40, 256, 128);
  backend_.reserve(1 << 20, 0, 0);
  const Tensor stacked = backend_.upload_weight_stacked({a.packed, b.packed}, DType::Q4);
  ASSERT_EQ(stacked.dim(0), 64);
  Tensor x = random({3, 256}, DType::F32);
  Tensor both = Tensor::empty({3, 64}, DType::F32), part = Tensor::empty({3, 40}, DType::F32);
  backend_.linear(x, stacked, nullptr, both);
  backend_.linear(x, b.packed, nullptr, part);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t j = 0; j < 40; ++j)
      EXPECT_EQ(both.data<float>()[r * 64 + 24 + j], part.data<float>()[r * 40 + j]);
}

TEST_F(CpuLinearInt4Test, RefusesGroupsThatDoNotDivideTheColumns) {
  EXPECT_THROW(Int4Layout::make(8, 200, 128, "w"), Error);
  EXPECT_THROW(Int4Layout::make(8, 256, 3, "w"), Error);
}

}  // namespace
}  // namespace qwenvl::test
