// The small ops against double-precision references: rms_norm, add_rms_norm, add, swiglu,
// gelu, rope (plain and M-RoPE sections), gather_rows, scatter_rows; increment.
#include <cmath>
#include <cstring>

#include "cpu_test_support.h"

namespace qwenvl::test {
namespace {

using CpuOpsTest = CpuTest;

std::vector<double> rms_norm_reference(const Tensor& x, const Tensor& w, double eps) {
  const int64_t h = x.dim(-1), rows = x.numel() / h;
  std::vector<double> out(x.numel());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < h; ++i) ss += get(x, r * h + i) * get(x, r * h + i);
    const double inv = 1 / std::sqrt(ss / h + eps);
    for (int64_t i = 0; i < h; ++i) out[r * h + i] = get(w, i) * get(x, r * h + i) * inv;
  }
  return out;
}

TEST_F(CpuOpsTest, RmsNormMatchesReferenceForEveryWeightDtype) {
  for (DType wdt : {DType::BF16, DType::F16, DType::F32})
    for (auto [rows, h] : {std::pair{1, 8}, {7, 1280}, {3, 2051}}) {
      SCOPED_TRACE(cat(dtype_name(wdt), " rows=", rows, " h=", h));
      Tensor x = random({rows, h}, DType::F32, -3, 3), w = random({h}, wdt, 0.5, 1.5);
      Tensor out = Tensor::empty({rows, h}, DType::F32);
      backend_.rms_norm(x, w, 1e-6f, out);
      expect_close(out, rms_norm_reference(x, w, 1e-6), {}, 1e-6, 1e-7, "rms_norm");
    }
}

TEST_F(CpuOpsTest, AddRmsNormUpdatesTheResidualAndNormalisesIt) {
  const int64_t rows = 5, h = 333;
  Tensor res = random({rows, h}, DType::F32), delta = random({rows, h}, DType::F32);
  Tensor w = random({h}, DType::BF16, 0.5, 1.5), out = Tensor::empty({rows, h}, DType::F32);
  Tensor sum = copy(res);
  std::vector<double> want_sum(rows * h);
  for (int64_t i = 0; i < rows * h; ++i) {
    sum.data<float>()[i] = res.data<float>()[i] + delta.data<float>()[i];
    want_sum[i] = sum.data<float>()[i];
  }
  backend_.add_rms_norm(res, delta, w, 1e-5f, out);
  expect_close(res, want_sum, {}, 0, 0, "residual");
  expect_close(out, rms_norm_reference(sum, w, 1e-5), {}, 1e-6, 1e-7, "add_rms_norm");
}

TEST_F(CpuOpsTest, ElementwiseOpsMatchReference) {
  const int64_t n = 40000 + uniform_int(0, 99);  // above the threading grain, odd
  Tensor a = random({n}, DType::F32, -8, 8), b = random({n}, DType::F32, -8, 8);
  std::vector<double> want(n);
  // swiglu over rows of [gate | up]: a is the gate half and b the up half of each row.
  const int64_t rows = 40, f = 1000 + uniform_int(0, 9);
  Tensor gate_up = random({rows, 2 * f}, DType::F32, -8, 8);
  Tensor swiglu_out = Tensor::empty({rows, f}, DType::F32);
  backend_.swiglu(gate_up, swiglu_out);
  std::vector<double> want_swiglu(rows * f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < f; ++j) {
      const double g = get(gate_up, r * 2 * f + j), u = get(gate_up, r * 2 * f + f + j);
      want_swiglu[r * f + j] = g / (1 + std::exp(-g)) * u;
    }
  expect_close(swiglu_out, want_swiglu, {}, 1e-6, 1e-7, "swiglu");
  Tensor narrow = Tensor::empty({rows, f - 1}, DType::F32);
  EXPECT_THROW(backend_.swiglu(gate_up, narrow), Error);

  Tensor g = copy(a);
  backend_.gelu(g);
  for (int64_t i = 0; i < n; ++i)
    want[i] = 0.5 * get(a, i) * (1 + std::erf(get(a, i) / std::sqrt(2.0)));
  expect_close(g, want, {}, 1e-6, 1e-7, "gelu");

  Tensor s = copy(a);
  backend_.add(s, b);
  for (int64_t i = 0; i < n; ++i) want[i] = float(get(a, i) + get(b, i));
  expect_close(s, want, {}, 0, 0, "add");
  Tensor short_b = random({n - 1}, DType::F32);
  EXPECT_THROW(backend_.add(s, short_b), Error);
}

TEST_F(CpuOpsTest, RopeQkvRotatesQAndKAndPlacesKAndVInTheirSlots) {
  for (bool mrope : {false, true}) {
    SCOPED_TRACE(mrope ? "m-rope" : "vision rope");
    const int d = mrope ? 128 : 80, half = d / 2, tokens = 9;
    const int hq = mrope ? 4 : 3, hkv = mrope ? 2 : 3, rows = mrope ? 3 : 2;
    const int64_t cache_rows = mrope ? 20 : tokens;
    RopeSpec spec;
    spec.head_dim = d;
    for (int j = 0; j < half; ++j) {
      // Qwen2.5-VL's text M-RoPE sections [16, 24, 24]; vision: alternate two rows.
      spec.pos_row.push_back(mrope ? (j < 16 ? 0 : j < 40 ? 1 : 2) : j % 2);
      spec.inv_freq.push_back(float(std::pow(10000.0, -2.0 * j / d)));
    }
    Tensor positions = Tensor::empty({rows, tokens}, DType::I32);
    for (int64_t i = 0; i < positions.numel(); ++i)
      positions.data<int32_t>()[i] = uniform_int(0, 30000);
    Tensor slots;  // the text model writes into cache rows; the vision tower row by row
    if (mrope) {
      slots = Tensor::empty({tokens}, DType::I32);
      for (int t = 0; t < tokens; ++t) slots.data<int32_t>()[t] = int32_t(cache_rows - 1 - 2 * t);
    }
    Tensor qkv = random({tokens, (hq + 2 * hkv) * d}, DType::F32, -2, 2);
    Tensor q = random({tokens, hq, d}, DType::F32);
    Tensor k = random({cache_rows, hkv, d}, DType::F32);
    Tensor v = random({cache_rows, hkv, d}, DType::F32);
    Tensor k_before = copy(k), v_before = copy(v);
    backend_.rope_qkv(qkv, positions, spec, slots, q, k, v);

    std::vector<double> want_q(q.numel()), want_k(k.numel()), want_v(v.numel());
    for (int64_t i = 0; i < k.numel(); ++i) {
      want_k[i] = get(k_before, i);
      want_v[i] = get(v_before, i);
    }
    for (int t = 0; t < tokens; ++t) {
      const int64_t row = slots.defined() ? slots.data<int32_t>()[t] : t;
      const int64_t in = int64_t(t) * (hq + 2 * hkv) * d;
      for (int h = 0; h < hq + 2 * hkv; ++h)
        for (int j = 0; j < half; ++j) {
          const float angle = float(positions.data<int32_t>()[spec.pos_row[j] * tokens + t]) *
                              spec.inv_freq[j];  // the contract: an fp32 angle
          const double c = std::cos(double(angle)), s = std::sin(double(angle));
          const double x1 = get(qkv, in + h * d + j), x2 = get(qkv, in + h * d + j + half);
          if (h >= hq + hkv) {
            const int64_t base = (row * hkv + h - hq - hkv) * d;
            want_v[base + j] = x1;
            want_v[base + j + half] = x2;
            continue;
          }
          std::vector<double>& want = h < hq ? want_q : want_k;
          const int64_t base = h < hq ? (int64_t(t) * hq + h) * d : (row * hkv + h - hq) * d;
          want[base + j] = x1 * c - x2 * s;
          want[base + j + half] = x2 * c + x1 * s;
        }
    }
    expect_close(q, want_q, {}, 0, 2e-6, "q");
    expect_close(k, want_k, {}, 0, 2e-6, "k");
    expect_close(v, want_v, {}, 0, 0, "v");
    if (mrope) {
      slots.data<int32_t>()[0] = int32_t(cache_rows);  // outside the cache: refused
      EXPECT_THROW(backend_.rope_qkv(qkv, positions, spec, slots, q, k, v), Error);
    }
  }
}

TEST_F(CpuOpsTest, GatherConvertsRowsAndScatterPlacesThem) {
  const int64_t vocab = 50, hidden = 37, n = 11;
  for (DType table_dtype : {DType::BF16, DType::F16, DType::F32}) {
    Tensor table = random({vocab, hidden}, table_dtype);
    Tensor idx = Tensor::empty({n}, DType::I32);
    for (int64_t i = 0; i < n; ++i) idx.data<int32_t>()[i] = uniform_int(0, vocab - 1);
    Tensor out = Tensor::empty({n, hidden}, DType::F32);
    backend_.gather_rows(table, idx, out);
    std::vector<double> want(n * hidden);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < hidden; ++c)
        want[i * hidden + c] = get(table, idx.data<int32_t>()[i] * hidden + c);
    expect_close(out, want, {}, 0, 0, "gather_rows");
  }
  Tensor dst = random({20, 4, 3}, DType::F32), src = random({3, 4, 3}, DType::F32);
  Tensor before = copy(dst);
  Tensor idx = Tensor::empty({3}, DType::I32);
  const int32_t rows[3] = {7, 19, 7};  // a repeated index keeps the last row
  std::memcpy(idx.data(), rows, sizeof rows);
  backend_.scatter_rows(src, idx, dst);
  std::vector<double> want(dst.numel());
  for (int64_t i = 0; i < dst.numel(); ++i) want[i] = get(before, i);
  for (int i = 0; i < 3; ++i)
    for (int c = 0; c < 12; ++c) want[rows[i] * 12 + c] = get(src, i * 12 + c);
  expect_close(dst, want, {}, 0, 0, "scatter_rows");
  idx.data<int32_t>()[1] = 20;
  EXPECT_THROW(backend_.scatter_rows(src, idx, dst), Error) << "index past the end";
  idx.data<int32_t>()[1] = -1;
  Tensor out = Tensor::empty({3, 4, 3}, DType::F32);
  EXPECT_THROW(backend_.gather_rows(dst, idx, out), Error) << "negative index";
}

TEST_F(CpuOpsTest, IncrementAddsOneToEveryIndex) {
  Tensor values = Tensor::empty({4}, DType::I32);
  const int32_t before[4] = {0, -1, 41, 1 << 20};
  std::memcpy(values.data(), before, sizeof before);
  backend_.increment(values);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(values.data<int32_t>()[i], before[i] + 1);
  Tensor floats = Tensor::empty({4}, DType::F32);
  EXPECT_THROW(backend_.increment(floats), Error) << "only I32 indices";
}

}  // namespace
}  // namespace qwenvl::test
