// linear against a double-precision reference, over weight dtypes, shapes on both sides of the
// decode / sgemm switch (odd sizes included), bias dtypes, instruction sets and thread counts.
#include "backend/cpu/cpu_kernels.h"
#include "core/thread_pool.h"
#include "cpu_test_support.h"

namespace qwenvl::test {
namespace {

class CpuLinearTest : public CpuTest {
 protected:
  void check(int64_t m, int64_t k, int64_t n, DType wdt, bool with_bias) {
    SCOPED_TRACE(cat("M=", m, " K=", k, " N=", n, " w=", dtype_name(wdt), " bias=", with_bias,
                     " isa=", cpu_isa_name(active_cpu_isa())));
    Tensor x = random({m, k}, DType::F32);
    Tensor w = random({n, k}, wdt, -0.5, 0.5);
    Tensor b = random({n}, wdt);
    Tensor out = Tensor::empty({m, n}, DType::F32);
    backend_.linear(x, w, with_bias ? &b : nullptr, out);
    std::vector<double> want(m * n), scale(m * n);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double s = with_bias ? get(b, j) : 0, a = std::abs(s);
        for (int64_t i = 0; i < k; ++i) {
          const double p = get(x, r * k + i) * get(w, j * k + i);
          s += p;
          a += std::abs(p);
        }
        want[r * n + j] = s;
        scale[r * n + j] = a;
      }
    // fp32 accumulation: the error is a small multiple of eps · Σ|x·w|.
    expect_close(out, want, scale, 1e-5, 1e-7, "linear");
  }
};

TEST_F(CpuLinearTest, MatchesDoubleReferenceForEveryDtypeShapeAndIsa) {
  const int64_t shapes[][3] = {{1, 64, 16},   {1, 1003, 37}, {2, 77, 5},      {3, 515, 129},
                               {4, 2048, 70}, {5, 600, 257}, {17, 1027, 131}, {64, 513, 300},
                               {33, 40, 9},   {3, 2500, 40}, {2, 1030, 19}};
  for (CpuIsa isa : supported_isas()) {
    set_cpu_isa(isa);
    for (DType wdt : {DType::BF16, DType::F16, DType::F32})
      for (auto& s : shapes) check(s[0], s[1], s[2], wdt, uniform_int(0, 1) == 1);
  }
}

TEST_F(CpuLinearTest, BiasIsAddedOnBothPaths) {
  check(1, 300, 50, DType::BF16, true);
  check(40, 300, 50, DType::BF16, true);
}

TEST_F(CpuLinearTest, OddThreadCountsSplitTheWorkCorrectly) {
  for (int threads : {3, 5}) {
    ThreadPool::set_global_threads(threads);
    check(1, 530, 333, DType::BF16, true);
    check(70, 530, 333, DType::F16, false);
  }
  ThreadPool::set_global_threads(0);
}

TEST_F(CpuLinearTest, KernelsAgreeOnTails) {
  // Lengths around every vector width: the scalar tails and the vector bodies must agree.
  for (CpuIsa isa : supported_isas()) {
    const CpuKernels& kern = cpu_kernels_for(isa);
    for (int64_t len : {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100}) {
      Tensor x = random({len}, DType::F32), wb = random({len}, DType::BF16),
             wh = random({len}, DType::F16), wf = random({len}, DType::F32);
      double sb = 0, sh = 0, sf = 0, a = 0;
      for (int64_t i = 0; i < len; ++i) {
        sb += get(x, i) * get(wb, i);
        sh += get(x, i) * get(wh, i);
        sf += get(x, i) * get(wf, i);
        a += std::abs(get(x, i));
      }
      EXPECT_NEAR(kern.dot_f32(x.data<float>(), wf.data<float>(), len), sf, 1e-6 * a);
      // Up to four rows at once, each a scaled copy of x: row r's sums are (r + 1) times row 0's.
      std::vector<float> rows(4 * len), permuted(4 * len);
      for (int r = 0; r < 4; ++r)
        for (int64_t i = 0; i < len; ++i) rows[r * len + i] = float(r + 1) * x.data<float>()[i];
      for (int r = 0; r < 4; ++r)
        kern.permute_for_bf16(rows.data() + r * len, len, permuted.data() + r * len);
      for (int m = 1; m <= 4; ++m) {
        float ob[4], oh[4], of[4];
        kern.rows_dot_bf16(permuted.data(), len, m, wb.data<uint16_t>(), len, ob);
        kern.rows_dot_f16(rows.data(), len, m, wh.data<uint16_t>(), len, oh);
        kern.rows_dot_f32(rows.data(), len, m, wf.data<float>(), len, of);
        for (int r = 0; r < m; ++r) {
          SCOPED_TRACE(cat(cpu_isa_name(isa), " len=", len, " m=", m, " row ", r));
          EXPECT_NEAR(ob[r], (r + 1) * sb, 1e-6 * (r + 1) * a);
          EXPECT_NEAR(oh[r], (r + 1) * sh, 1e-6 * (r + 1) * a);
          EXPECT_NEAR(of[r], (r + 1) * sf, 1e-6 * (r + 1) * a);
        }
      }
      std::vector<float> y(len, 0.5f), conv(len);
      kern.axpy_f32(y.data(), 2.0f, x.data<float>(), len);
      kern.bf16_to_f32(wb.data<uint16_t>(), conv.data(), len);
      for (int64_t i = 0; i < len; ++i) {
        EXPECT_FLOAT_EQ(y[i], 0.5f + 2.0f * x.data<float>()[i]);
        EXPECT_EQ(conv[i], float(get(wb, i)));
      }
      kern.f16_to_f32(wh.data<uint16_t>(), conv.data(), len);
      for (int64_t i = 0; i < len; ++i) EXPECT_EQ(conv[i], float(get(wh, i)));
    }
  }
}

TEST_F(CpuLinearTest, RejectsMismatchedShapes) {
  Tensor x = random({2, 8}, DType::F32), w = random({4, 9}, DType::BF16);
  Tensor out = Tensor::empty({2, 4}, DType::F32);
  EXPECT_THROW(backend_.linear(x, w, nullptr, out), Error);
  Tensor w2 = random({4, 8}, DType::BF16), bad_out = Tensor::empty({2, 5}, DType::F32);
  EXPECT_THROW(backend_.linear(x, w2, nullptr, bad_out), Error);
}

}  // namespace
}  // namespace qwenvl::test
