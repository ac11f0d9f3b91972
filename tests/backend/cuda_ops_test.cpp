// Every CudaBackend op against CpuBackend (fp32) on fresh random inputs, in bf16 and fp16.
// Inputs are rounded to the compute dtype before either backend sees them, so the difference
// measures only the CUDA op's arithmetic and output rounding. Outputs are poisoned with NaN
// before each op, so an element the op forgot to write fails the check. Skipped without a GPU.
#ifdef QWENVL_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>
#include <utility>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/packed_fp8.h"
#include "backend/packed_int4.h"
#include "backend/residue_first.h"
#include "core/error.h"
#include "core/half.h"
#include "paged_keys.h"

namespace qwenvl {
namespace {

float round_to(float v, DType dtype) {
  if (dtype == DType::BF16) return bf16_to_float(float_to_bf16(v));
  if (dtype == DType::F16) return fp16_to_float(float_to_fp16(v));
  return v;
}

// Relative L2 error; infinite when `got` holds a NaN or inf (an unwritten or overflowed element).
double rel_l2(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.numel(), want.numel());
  double diff = 0, norm = 0;
  const float* g = got.data<float>();
  const float* w = want.data<float>();
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (!std::isfinite(g[i])) return INFINITY;
    diff += double(g[i] - w[i]) * (g[i] - w[i]);
    norm += double(w[i]) * w[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

// The text model's M-RoPE for head_dim 128 as model/rope.h builds it (sections 16/24/24 of the
// t/h/w rows, theta 1e6, rounded like transformers).
RopeSpec text_rope_spec(int d) {
  RopeSpec spec;
  spec.head_dim = d;
  spec.round_in_activation_dtype = true;
  for (int j = 0; j < d / 2; ++j) {
    spec.pos_row.push_back(j < 16 ? 0 : j < 40 ? 1 : 2);
    spec.inv_freq.push_back(std::pow(1000000.0f, -2.0f * float(j) / float(d)));
  }
  return spec;
}

class CudaOps : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device";
    seed_ = std::random_device{}();
    rng_.seed(seed_);
    gpu_ = std::make_unique<CudaBackend>(GetParam());
    gpu_->reserve(size_t(256) << 20, size_t(64) << 20, size_t(1) << 30);
    cpu_.reserve(0, 0, 0);
  }

  DType dtype() const { return GetParam(); }
  double tolerance() const { return dtype() == DType::BF16 ? 2e-2 : 5e-3; }

  // Host f32 values drawn from N(0, scale), representable in the compute dtype.
  Tensor random(const Shape& shape, float scale = 1.0f) {
    Tensor t = Tensor::empty(shape, DType::F32);
    std::normal_distribution<float> normal(0.0f, scale);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = round_to(normal(rng_), dtype());
    return t;
  }

  Tensor ints(const std::vector<int32_t>& values) {
    Tensor t = Tensor::empty({int64_t(values.size())}, DType::I32);
    std::memcpy(t.data(), values.data(), values.size() * 4);
    return t;
  }

  Tensor to_gpu(const Tensor& host, DType dtype) {
    Tensor t = gpu_->alloc(host.shape(), dtype);
    gpu_->copy_from_host(host, t);
    return t;
  }
  Tensor to_gpu(const Tensor& host) {
    return to_gpu(host, host.dtype() == DType::I32 ? DType::I32 : dtype());
  }

  Tensor to_host(const Tensor& device) {
    Tensor t =
        Tensor::empty(device.shape(), device.dtype() == DType::I32 ? DType::I32 : DType::F32);
    gpu_->copy_to_host(device, t);
    return t;
  }

  Tensor poisoned(const Shape& shape, DType dtype) {
    Tensor host = Tensor::empty(shape, DType::F32);
    std::fill_n(host.data<float>(), host.numel(), NAN);
    return to_gpu(host, dtype);
  }

  Tensor copy(const Tensor& host) {
    Tensor t = Tensor::empty(host.shape(), host.dtype());
    std::memcpy(t.data(), host.data(), host.nbytes());
    return t;
  }

  uint32_t seed_ = 0;
  std::mt19937 rng_;
  CpuBackend cpu_;
  std::unique_ptr<CudaBackend> gpu_;
};

#define TRACE_SEED() SCOPED_TRACE(::testing::Message() << "seed " << seed_)

TEST_P(CudaOps, CopiesRoundTripWithConversion) {
  TRACE_SEED();
  Tensor host = random({1000, 37});
  Tensor back = to_host(to_gpu(host));
  EXPECT_EQ(std::memcmp(back.data(), host.data(), host.nbytes()), 0);
  Tensor ids = ints({5, -3, 1 << 30, 0, 77});
  Tensor ids_back = to_host(to_gpu(ids));
  EXPECT_EQ(std::memcmp(ids_back.data(), ids.data(), ids.nbytes()), 0);
  // A bf16 checkpoint tensor uploaded in the compute dtype, larger than one staging slot.
  Tensor big = Tensor::empty({3 << 20}, DType::BF16);
  std::vector<float> expected(big.numel());
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < big.numel(); ++i) {
    uint16_t bits = float_to_bf16(normal(rng_));
    big.data<uint16_t>()[i] = bits;
    expected[i] = round_to(bf16_to_float(bits), dtype());
  }
  Tensor weight = gpu_->upload_weight(big, dtype());
  Tensor weight_back = to_host(weight);
  EXPECT_EQ(std::memcmp(weight_back.data(), expected.data(), expected.size() * 4), 0);
  // peak_bytes counts every region reserved, our own scratch included.
  EXPECT_GT(gpu_->peak_bytes(), (size_t(256) << 20) + (size_t(64) << 20) + (size_t(1) << 30));
}

TEST_P(CudaOps, LinearMatchesCpu) {
  TRACE_SEED();
  struct Case {
    int64_t m, n, k;
    bool bias, f32_out, gemv;
  };
  for (Case c : {Case{1, 2048, 2048, false, false, true}, Case{1, 2048, 2048, false, false, false},
                 Case{3, 1000, 520, true, false, true}, Case{3, 1000, 520, true, false, false},
                 Case{8, 384, 1024, true, true, true}, Case{4, 64, 100, false, false, true},
                 Case{64, 512, 768, true, false, true}, Case{200, 1280, 1280, true, true, true},
                 Case{1, 4096, 512, false, true, true}, Case{1, 1001, 8200, true, false, true},
                 Case{1, 300, 11008, false, true, true}, Case{2, 301, 8200, true, false, true},
                 Case{1, 1003, 520, true, false, true}}) {
    SCOPED_TRACE(::testing::Message() << c.m << "x" << c.n << "x" << c.k << " bias " << c.bias
                                      << " f32 " << c.f32_out << " gemv " << c.gemv);
    gpu_->set_prefer_gemv(c.gemv);
    Tensor x = random({c.m, c.k}), w = random({c.n, c.k}, 0.05f), b = random({c.n});
    Tensor want = Tensor::empty({c.m, c.n}, DType::F32);
    cpu_.linear(x, w, c.bias ? &b : nullptr, want);
    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight(w, dtype()), gb = gpu_->upload_weight(b, dtype());
    Tensor gx = to_gpu(x);
    Tensor out = poisoned({c.m, c.n}, c.f32_out ? DType::F32 : dtype());
    gpu_->linear(gx, gw, c.bias ? &gb : nullptr, out);
    EXPECT_LT(rel_l2(to_host(out), want), tolerance());
    gpu_->workspace_release(mark);
  }
  gpu_->set_prefer_gemv(true);
}

// The patch embedding's product: each output's fp32 sum taken in increasing K, bit for bit.
TEST_P(CudaOps, LinearInOrderSumsInOrder) {
  TRACE_SEED();
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{300, 200, 1176}, {5, 130, 40}}) {
    SCOPED_TRACE(::testing::Message() << m << "x" << n << "x" << k);
    Tensor x = random({m, k}), w = random({n, k}, 0.05f);
    size_t mark = gpu_->workspace_mark();
    Tensor out = poisoned({m, n}, dtype());
    gpu_->linear_in_order(to_gpu(x), gpu_->upload_weight(w, dtype()), out);
    Tensor got = to_host(out);
    int64_t differ = 0;
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        float sum = 0.0f;  // products of two bf16 or fp16 values are exact in fp32
        for (int64_t i = 0; i < k; ++i)
          sum += x.data<float>()[r * k + i] * w.data<float>()[c * k + i];
        differ += got.data<float>()[r * n + c] != round_to(sum, dtype());
      }
    EXPECT_EQ(differ, 0);
    gpu_->workspace_release(mark);
  }
}

// The vision MLP's down projection over K = 3420 stored residue first (3456 columns), at row
// counts where transformers' cuBLAS splits K in parts (5,336 rows on an H100) and where it does
// not.
TEST_P(CudaOps, LinearResidueFirstMatchesCpu) {
  TRACE_SEED();
  const int64_t n = 1280, k = 3420;
  const ResidueFirst layout{k};
  const int64_t width = layout.width(), gap = layout.position(layout.residue()) - layout.residue();
  for (int64_t m : {5336, 6256, 40}) {
    SCOPED_TRACE(::testing::Message() << m << " rows");
    Tensor x = random({m, width}), w = random({n, width}, 0.05f), b = random({n});
    for (Tensor* t : {&x, &w})
      for (int64_t r = 0; r < t->dim(0); ++r)
        std::fill_n(t->data<float>() + r * width + layout.residue(), gap, 0.0f);
    Tensor want = Tensor::empty({m, n}, DType::F32);
    cpu_.linear(x, w, &b, want);
    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight(w, dtype()), gb = gpu_->upload_weight(b, dtype());
    Tensor out = poisoned({m, n}, dtype());
    gpu_->linear_residue_first(to_gpu(x), gw, &gb, k, m, out);
    EXPECT_LT(rel_l2(to_host(out), want), tolerance());
    gpu_->workspace_release(mark);
  }
}

// The MLP's fused first half: stacked [gate; up] weights uploaded in two parts, the decode path
// (activation inside the matrix-vector product) and the cuBLASLt path (product, then swiglu).
TEST_P(CudaOps, LinearSwigluMatchesCpu) {
  TRACE_SEED();
  struct Case {
    int64_t m, f, k;
    bool bias, gemv;
  };
  for (Case c : {Case{1, 1376, 2048, false, true}, Case{3, 300, 520, true, true},
                 Case{8, 64, 1024, true, true}, Case{1, 1376, 2048, false, false},
                 Case{40, 300, 512, true, true}}) {
    SCOPED_TRACE(::testing::Message()
                 << c.m << "x" << c.f << "x" << c.k << " bias " << c.bias << " gemv " << c.gemv);
    gpu_->set_prefer_gemv(c.gemv);
    Tensor x = random({c.m, c.k}), gate = random({c.f, c.k}, 0.05f), up = random({c.f, c.k}, 0.05f);
    Tensor gate_b = random({c.f}), up_b = random({c.f});
    Tensor w = Tensor::empty({2 * c.f, c.k}, DType::F32), b = Tensor::empty({2 * c.f}, DType::F32);
    std::memcpy(w.data(), gate.data(), size_t(gate.numel()) * 4);
    std::memcpy(w.data<float>() + gate.numel(), up.data(), size_t(up.numel()) * 4);
    std::memcpy(b.data(), gate_b.data(), size_t(c.f) * 4);
    std::memcpy(b.data<float>() + c.f, up_b.data(), size_t(c.f) * 4);
    Tensor scratch = Tensor::empty({c.m, 2 * c.f}, DType::F32);
    Tensor want = Tensor::empty({c.m, c.f}, DType::F32);
    cpu_.linear_swiglu(x, w, c.bias ? &b : nullptr, scratch, want);
    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight_stacked({gate, up}, dtype());
    Tensor gb = gpu_->upload_weight_stacked({gate_b, up_b}, dtype());
    Tensor gscratch = gpu_->alloc({c.m, 2 * c.f}, dtype());
    Tensor out = poisoned({c.m, c.f}, dtype());
    gpu_->linear_swiglu(to_gpu(x), gw, c.bias ? &gb : nullptr, gscratch, out);
    EXPECT_LT(rel_l2(to_host(out), want), tolerance());
    gpu_->workspace_release(mark);
  }
  gpu_->set_prefer_gemv(true);
  Tensor a = random({4, 8}), b = random({3, 9});
  EXPECT_THROW(gpu_->upload_weight_stacked({a, b}, dtype()), Error);
}

// A sublayer's output into the residual stream plus the next norm, twice in a row as in a
// decode step, at decode and prefill sizes.
TEST_P(CudaOps, LinearAddRmsNormMatchesCpu) {
  TRACE_SEED();
  for (auto [m, n, k] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 2048, 2048}, {3, 1024, 4096}, {20, 512, 256}}) {
    SCOPED_TRACE(::testing::Message() << m << "x" << n << "x" << k);
    Tensor x = random({m, k}), w = random({n, k}, 0.05f), norm_w = random({n});
    Tensor residual = random({m, n}, 3.0f);
    Tensor want_residual = copy(residual), delta = Tensor::empty({m, n}, DType::F32);
    Tensor want_normed = Tensor::empty({m, n}, DType::F32);
    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight(w, dtype()), gnorm = gpu_->upload_weight(norm_w, dtype());
    Tensor gx = to_gpu(x), gres = to_gpu(residual);
    Tensor gdelta = gpu_->alloc({m, n}, dtype()), gnormed = poisoned({m, n}, dtype());
    for (int round = 0; round < 2; ++round) {
      cpu_.linear_add_rms_norm(x, w, want_residual, norm_w, 1e-6f, delta, want_normed);
      gpu_->linear_add_rms_norm(gx, gw, gres, gnorm, 1e-6f, gdelta, gnormed);
    }
    EXPECT_LT(rel_l2(to_host(gres), want_residual), tolerance());
    EXPECT_LT(rel_l2(to_host(gnormed), want_normed), tolerance());
    gpu_->workspace_release(mark);
  }
}

TEST_P(CudaOps, NormsMatchCpu) {
  TRACE_SEED();
  for (auto [rows, cols] :
       {std::pair<int64_t, int64_t>{1, 2048}, {7, 1280}, {33, 3584}, {5, 100}, {2, 8200}}) {
    SCOPED_TRACE(::testing::Message() << rows << "x" << cols);
    for (DType wdtype : {DType::F32, dtype()}) {
      Tensor x = random({rows, cols}, 3.0f), w = random({cols}), delta = random({rows, cols});
      Tensor want = Tensor::empty({rows, cols}, DType::F32);
      cpu_.rms_norm(x, w, 1e-6f, want);
      Tensor gw = gpu_->upload_weight(w, wdtype), gx = to_gpu(x);
      Tensor out = poisoned({rows, cols}, dtype());
      gpu_->rms_norm(gx, gw, 1e-6f, out);
      EXPECT_LT(rel_l2(to_host(out), want), tolerance());

      for (bool f32_delta : {false, true}) {
        Tensor residual = copy(x);
        Tensor want2 = Tensor::empty({rows, cols}, DType::F32);
        cpu_.add_rms_norm(residual, delta, w, 1e-6f, want2);
        Tensor gres = to_gpu(x), gdelta = to_gpu(delta, f32_delta ? DType::F32 : dtype());
        Tensor out2 = poisoned({rows, cols}, dtype());
        gpu_->add_rms_norm(gres, gdelta, gw, 1e-6f, out2);
        EXPECT_LT(rel_l2(to_host(out2), want2), tolerance());
        EXPECT_LT(rel_l2(to_host(gres), residual), tolerance());
      }
    }
  }
}

TEST_P(CudaOps, ElementwiseMatchesCpu) {
  TRACE_SEED();
  for (int64_t n : {int64_t(4096), int64_t(1000003), int64_t(13)}) {
    SCOPED_TRACE(n);
    Tensor a = random({n}), b = random({n}), gate = random({n}, 3.0f), up = random({n});
    Tensor want_add = copy(a);
    cpu_.add(want_add, b);
    Tensor ga = to_gpu(a);
    gpu_->add(ga, to_gpu(b));
    EXPECT_LT(rel_l2(to_host(ga), want_add), tolerance());

    // swiglu over [rows, 2f]: f a multiple of 8 (vector path) and not.
    for (int64_t f : {int64_t(1376), int64_t(13)}) {
      const int64_t rows = std::max<int64_t>(1, n / (2 * f));
      Tensor gate_up = random({rows, 2 * f}, 3.0f);
      Tensor want_swiglu = Tensor::empty({rows, f}, DType::F32);
      cpu_.swiglu(gate_up, want_swiglu);
      Tensor out = poisoned({rows, f}, dtype());
      gpu_->swiglu(to_gpu(gate_up), out);
      EXPECT_LT(rel_l2(to_host(out), want_swiglu), tolerance());
    }

    Tensor want_gelu = copy(gate);
    cpu_.gelu(want_gelu);
    Tensor gg = to_gpu(gate);
    gpu_->gelu(gg);
    EXPECT_LT(rel_l2(to_host(gg), want_gelu), tolerance());
  }
}

TEST_P(CudaOps, FP16Saturates) {
  if (dtype() != DType::F16) GTEST_SKIP() << "fp16 only";
  Tensor a = Tensor::empty({8}, DType::F32), b = Tensor::empty({8}, DType::F32);
  std::fill_n(a.data<float>(), 8, 60000.0f);
  std::fill_n(b.data<float>(), 8, 60000.0f);
  Tensor ga = to_gpu(a);
  gpu_->add(ga, to_gpu(b, DType::F32));
  Tensor back = to_host(ga);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(back.data<float>()[i], 65504.0f);
}

TEST_P(CudaOps, RopeQkvMatchesCpu) {
  TRACE_SEED();
  // Text M-RoPE (3 position rows, sections 16/24/24 of 64 frequencies, GQA, keys and values into
  // cache slots) and the vision tower's 2-D rope (q, k, v heads alike, row by row).
  struct Case {
    int64_t tokens;
    int heads_q, heads_kv, head_dim, rows, max_pos;
    int64_t cache;
  };
  for (Case c : {Case{37, 4, 2, 128, 3, 30000, 100}, Case{300, 16, 16, 80, 2, 120, 0}}) {
    SCOPED_TRACE(c.head_dim);
    RopeSpec spec;
    spec.head_dim = c.head_dim;
    spec.round_in_activation_dtype = c.rows == 3;  // as the model's specs (model/rope.h)
    int half = c.head_dim / 2;
    for (int j = 0; j < half; ++j) {
      spec.pos_row.push_back(c.rows == 3 ? (j < 16 ? 0 : j < 40 ? 1 : 2) : (j < half / 2 ? 0 : 1));
      spec.inv_freq.push_back(
          std::pow(10000.0f, -2.0f * float(j % (c.rows == 3 ? half : half / 2)) /
                                 float(c.rows == 3 ? c.head_dim : half)));
    }
    std::vector<int32_t> pos(size_t(c.rows) * c.tokens);
    std::uniform_int_distribution<int> dist(0, c.max_pos);
    for (int32_t& p : pos) p = dist(rng_);
    Tensor positions = ints(pos).view({c.rows, c.tokens});
    Tensor slots, gslots;
    const int64_t kv_rows = c.cache ? c.cache : c.tokens;
    if (c.cache) {
      std::vector<int32_t> slot(size_t(c.tokens));
      std::iota(slot.begin(), slot.end(), int32_t(c.cache - c.tokens));
      std::shuffle(slot.begin(), slot.end(), rng_);
      slots = ints(slot);
      gslots = to_gpu(slots, DType::I32);
    }
    Tensor qkv = random({c.tokens, (c.heads_q + 2 * c.heads_kv) * c.head_dim});
    Tensor k_cache = random({kv_rows, c.heads_kv, c.head_dim});
    Tensor v_cache = random({kv_rows, c.heads_kv, c.head_dim});
    Tensor want_q = Tensor::empty({c.tokens, c.heads_q, c.head_dim}, DType::F32);
    Tensor want_k = copy(k_cache), want_v = copy(v_cache);
    cpu_.rope_qkv(qkv, positions, spec, slots, want_q, want_k, want_v);
    Tensor gq = poisoned({c.tokens, c.heads_q, c.head_dim}, dtype());
    Tensor gk = to_gpu(k_cache), gv = to_gpu(v_cache), gqkv = to_gpu(qkv);
    Tensor gpos = to_gpu(positions, DType::I32);
    gpu_->rope_qkv(gqkv, gpos, spec, gslots, gq, gk, gv);
    gpu_->rope_qkv(gqkv, gpos, spec, gslots, gq, gk, gv);  // again, from the cached table
    EXPECT_LT(rel_l2(to_host(gq), want_q), tolerance());
    EXPECT_LT(rel_l2(to_host(gk), want_k), tolerance());
    EXPECT_LT(rel_l2(to_host(gv), want_v), tolerance());
  }
}

// The text model's rounding recipe, element by element: transformers rounds cos and sin to the
// activation dtype, then q * cos, rotate_half(q) * sin and their sum (each a torch op in that
// dtype). Host cosf/sinf may differ from the device's sincosf in the last fp32 bit, which flips
// a rounding now and then, so a few elements may sit a step of the products' size away.
TEST_P(CudaOps, TextRopeRoundsLikeTransformers) {
  TRACE_SEED();
  const int hq = 4, hkv = 2, d = 128, half = d / 2;
  const int64_t tokens = 64;
  const RopeSpec spec = text_rope_spec(d);
  std::vector<int32_t> pos(size_t(3 * tokens));
  std::uniform_int_distribution<int> dist(0, 30000);
  for (int32_t& p : pos) p = dist(rng_);
  Tensor positions = ints(pos).view({3, tokens});
  Tensor qkv = random({tokens, (hq + 2 * hkv) * d});
  Tensor gq = poisoned({tokens, hq, d}, dtype());
  Tensor gk = poisoned({tokens, hkv, d}, dtype()), gv = poisoned({tokens, hkv, d}, dtype());
  gpu_->rope_qkv(to_gpu(qkv), to_gpu(positions, DType::I32), spec, Tensor(), gq, gk, gv);
  Tensor q = to_host(gq), k = to_host(gk);
  auto r = [&](float f) { return round_to(f, dtype()); };
  int64_t exact = 0, total = 0;
  for (int64_t t = 0; t < tokens; ++t)
    for (int head = 0; head < hq + hkv; ++head)
      for (int j = 0; j < half; ++j) {
        const float* x = qkv.data<float>() + (t * (hq + 2 * hkv) + head) * d;
        const float angle =
            float(pos[size_t(spec.pos_row[size_t(j)] * tokens + t)]) * spec.inv_freq[size_t(j)];
        const float c = r(std::cos(angle)), s = r(std::sin(angle));
        const float want[2] = {r(r(x[j] * c) - r(x[j + half] * s)),
                               r(r(x[j + half] * c) + r(x[j] * s))};
        const float* got = head < hq ? q.data<float>() + (t * hq + head) * d
                                     : k.data<float>() + (t * hkv + head - hq) * d;
        for (int i = 0; i < 2; ++i) {
          const float g = got[j + i * half], w = want[i];
          ++total;
          if (g == w) {
            ++exact;
            continue;
          }
          const float products = std::max(std::fabs(x[j]), std::fabs(x[j + half]));
          const float step = products * (dtype() == DType::BF16 ? 1.0f / 128 : 1.0f / 1024);
          ASSERT_LE(std::fabs(g - w), 2 * step)
              << "token " << t << " head " << head << " j " << j + i * half;
        }
      }
  EXPECT_GE(double(exact), 0.995 * double(total)) << exact << " of " << total << " exact";
}

// The decoder's fused input projection: the decode path (rotation inside the matrix-vector
// product, keys and values straight into cache slots) and the prefill path (one product or one
// per projection, then rope_qkv), against the CPU's linear + rope_qkv.
TEST_P(CudaOps, LinearRopeQkvMatchesCpu) {
  TRACE_SEED();
  const int hq = 4, hkv = 2, d = 128;
  const int64_t hidden = 512, cache = 40, width = (hq + 2 * hkv) * d;
  const RopeSpec spec = text_rope_spec(d);
  for (auto [m, products] :
       {std::pair{int64_t(1), QkvProducts::kPerProjection},
        std::pair{int64_t(3), QkvProducts::kOne}, std::pair{int64_t(20), QkvProducts::kOne},
        std::pair{int64_t(20), QkvProducts::kPerProjection}}) {
    SCOPED_TRACE(testing::Message() << m << " rows, products " << int(products));
    std::vector<int32_t> pos(static_cast<size_t>(3 * m)), slot(static_cast<size_t>(m));
    std::uniform_int_distribution<int> dist(0, 30000);
    for (int32_t& p : pos) p = dist(rng_);
    std::iota(slot.begin(), slot.end(), int32_t(cache - m));
    std::shuffle(slot.begin(), slot.end(), rng_);
    Tensor positions = ints(pos).view({3, m}), slots = ints(slot);
    Tensor x = random({m, hidden}), w = random({width, hidden}, 0.05f), b = random({width});
    Tensor k_cache = random({cache, hkv, d}), v_cache = random({cache, hkv, d});
    Tensor qkv = Tensor::empty({m, width}, DType::F32);
    Tensor want_q = Tensor::empty({m, hq, d}, DType::F32);
    Tensor want_k = copy(k_cache), want_v = copy(v_cache);
    cpu_.linear_rope_qkv(x, w, b, QkvProducts::kOne, positions, spec, slots, qkv, want_q, want_k,
                         want_v);
    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight(w, dtype()), gb = gpu_->upload_weight(b, dtype());
    Tensor gqkv = gpu_->alloc({m, width}, dtype());
    Tensor gq = poisoned({m, hq, d}, dtype());
    Tensor gk = to_gpu(k_cache), gv = to_gpu(v_cache);
    gpu_->linear_rope_qkv(to_gpu(x), gw, gb, products, to_gpu(positions, DType::I32), spec,
                          to_gpu(slots, DType::I32), gqkv, gq, gk, gv);
    EXPECT_LT(rel_l2(to_host(gq), want_q), tolerance());
    EXPECT_LT(rel_l2(to_host(gk), want_k), tolerance());
    EXPECT_LT(rel_l2(to_host(gv), want_v), tolerance());
    if (products == QkvProducts::kPerProjection && m > 8) {
      // The prefill's products per projection: each column block of qkv holds exactly what the
      // product with that projection alone gives.
      const Tensor got = to_host(gqkv);
      int64_t row0 = 0;
      for (int64_t rows : {int64_t(hq) * d, int64_t(hkv) * d, int64_t(hkv) * d}) {
        Tensor pw = gpu_->upload_weight(w.rows(row0, rows), dtype());
        Tensor pb = gpu_->upload_weight(b.rows(row0, rows), dtype());
        Tensor alone = gpu_->alloc({m, rows}, dtype());
        gpu_->linear(to_gpu(x), pw, &pb, alone);
        const Tensor want = to_host(alone);
        int64_t differ = 0;
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < rows; ++j)
            differ += got.data<float>()[i * width + row0 + j] != want.data<float>()[i * rows + j];
        EXPECT_EQ(differ, 0) << "projection rows from " << row0;
        row0 += rows;
      }
    }
    gpu_->workspace_release(mark);
  }
}

TEST_P(CudaOps, AttentionMatchesCpu) {
  TRACE_SEED();
  struct Case {
    const char* name;
    std::vector<int> q_lens, k_lens;
    int hq, hkv, d;
    bool causal;
  };
  std::vector<Case> cases = {
      {"vision windows",
       {64, 64, 40, 64, 17, 64, 1, 33},
       {64, 64, 40, 64, 17, 64, 1, 33},
       16,
       16,
       80,
       false},
      {"vision full", {700, 300}, {700, 300}, 16, 16, 80, false},
      {"causal after prefix, GQA", {100, 70, 5}, {300, 70, 131}, 16, 2, 128, true},
      {"causal prefill 7B", {257}, {257}, 28, 4, 128, true},
      // Decode: up to 1,024 keys (max_k) a block per query head, beyond a block per kv head.
      {"decode split-K", {1, 1, 0, 1}, {8000, 1, 5, 3000}, 28, 4, 128, true},
      {"decode, a short segment uses fewer slices", {1, 1}, {130, 9000}, 16, 2, 128, true},
      {"decode head_dim 80", {1, 1}, {700, 64}, 16, 16, 80, true},
      {"decode head_dim 80, long context", {1, 1}, {1500, 3}, 16, 16, 80, true},
      {"decode short context, 3B heads", {1, 1}, {1000, 37}, 16, 2, 128, true},
      {"decode wide group", {1}, {2000}, 16, 1, 128, true},
      {"small heads (tiny test models)", {33, 7}, {40, 7}, 4, 2, 16, true},
      {"small heads, windows", {64, 20}, {64, 20}, 4, 4, 32, false},
      {"small heads decode", {1}, {300}, 4, 2, 16, true},
      {"small heads decode, long context", {1, 1}, {2100, 40}, 4, 2, 16, true},
      // A batch's decode rows, then prompt chunks: the decode kernel takes the leading ones.
      {"decode rows before prompt chunks",
       {1, 1, 1, 200, 7},
       {700, 30, 2500, 900, 7},
       16,
       2,
       128,
       true},
      {"a decode row before a prompt chunk, 7B heads", {1, 64}, {40, 64}, 28, 4, 128, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<int32_t> cu_q{0}, cu_k{0};
    int max_q = 0, max_k = 0;
    for (size_t s = 0; s < c.q_lens.size(); ++s) {
      cu_q.push_back(cu_q.back() + c.q_lens[s]);
      cu_k.push_back(cu_k.back() + c.k_lens[s]);
      max_q = std::max(max_q, c.q_lens[s]);
      max_k = std::max(max_k, c.k_lens[s]);
    }
    Tensor q = random({cu_q.back(), c.hq, c.d}), k = random({cu_k.back(), c.hkv, c.d}),
           v = random({cu_k.back(), c.hkv, c.d});
    AttentionSegments cpu_seg{ints(cu_q), ints(cu_k), int(c.q_lens.size()),         max_q,
                              max_k,      c.causal,   1.0f / std::sqrt(float(c.d)), {},
                              0};
    Tensor want = Tensor::empty(q.shape(), DType::F32);
    cpu_.attention(q, k, v, cpu_seg, want);
    size_t mark = gpu_->workspace_mark();
    AttentionSegments gpu_seg = cpu_seg;
    gpu_seg.cu_q = to_gpu(cpu_seg.cu_q);
    gpu_seg.cu_k = to_gpu(cpu_seg.cu_k);
    // The leading single-query segments, as make_segments marks them.
    for (int& s = gpu_seg.single_query_segments;
         s < int(c.q_lens.size()) - 1 && c.q_lens[size_t(s)] == 1; ++s)
      gpu_seg.single_query_max_k = std::max(gpu_seg.single_query_max_k, c.k_lens[size_t(s)]);
    Tensor out = poisoned(q.shape(), dtype());
    gpu_->attention(to_gpu(q), to_gpu(k), to_gpu(v), gpu_seg, out);
    EXPECT_LT(rel_l2(to_host(out), want), tolerance());
    // The same keys in shuffled blocks of a paged cache; blocks of 16 rows cut the kernels' key
    // tiles.
    for (int block : {16, 64}) {
      SCOPED_TRACE(cat("paged, blocks of ", block));
      test::PagedKeys pool = test::page_keys(k, v, cu_k, block, uint32_t(block));
      AttentionSegments paged = gpu_seg;
      paged.block_table = to_gpu(pool.table);
      paged.block_size = block;
      Tensor paged_out = poisoned(q.shape(), dtype());
      gpu_->attention(to_gpu(q), to_gpu(pool.k), to_gpu(pool.v), paged, paged_out);
      EXPECT_LT(rel_l2(to_host(paged_out), want), tolerance());
    }
    gpu_->workspace_release(mark);
  }
}

TEST_P(CudaOps, RowsMatchCpu) {
  TRACE_SEED();
  // Embedding lookup from a bf16 table into the compute dtype.
  Tensor table_f = random({1000, 256});
  Tensor table = Tensor::empty({1000, 256}, DType::BF16);
  for (int64_t i = 0; i < table.numel(); ++i)
    table.data<uint16_t>()[i] = float_to_bf16(table_f.data<float>()[i]);
  std::vector<int32_t> idx(77);
  std::uniform_int_distribution<int> pick(0, 999);
  for (int32_t& i : idx) i = pick(rng_);
  Tensor indices = ints(idx);
  Tensor want = Tensor::empty({77, 256}, DType::F32);
  cpu_.gather_rows(table, indices, want);
  Tensor gtable = gpu_->upload_weight(table, DType::BF16);
  Tensor out = poisoned({77, 256}, dtype());
  gpu_->gather_rows(gtable, to_gpu(indices), out);
  EXPECT_LT(rel_l2(to_host(out), want), dtype() == DType::BF16 ? 1e-7 : 1e-3);

  // Scatter of new rows into a persistent cache, then a same-dtype gather back.
  std::vector<int32_t> slots(50);
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng_);
  slots.resize(20);
  Tensor rows = random({20, 2, 64}), cache = random({50, 2, 64});
  Tensor want_cache = copy(cache);
  cpu_.scatter_rows(rows, ints(slots), want_cache);
  Tensor gcache = gpu_->alloc_persistent({50, 2, 64}, dtype());
  gpu_->copy_from_host(cache, gcache);
  gpu_->scatter_rows(to_gpu(rows), to_gpu(ints(slots)), gcache);
  EXPECT_EQ(rel_l2(to_host(gcache), want_cache), 0.0);
  Tensor back = poisoned({20, 2, 64}, dtype());
  gpu_->gather_rows(gcache, to_gpu(ints(slots)), back);
  EXPECT_EQ(rel_l2(to_host(back), rows), 0.0);
}

TEST_P(CudaOps, IncrementMatchesTheCpu) {
  Tensor want = ints({0, -1, 41, 1 << 20, 7});
  Tensor got = to_gpu(want);
  cpu_.increment(want);
  gpu_->increment(got);
  Tensor back = to_host(got);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(back.data<int32_t>()[i], want.data<int32_t>()[i]);
}

TEST_P(CudaOps, SamplePicksTheCpuToken) {
  TRACE_SEED();
  const int64_t vocab = 151936;
  std::vector<SamplingParams> settings(7);
  settings[0].temperature = 0.0f;
  settings[1].temperature = 0.0f, settings[1].repetition_penalty = 1.3f;
  settings[2].temperature = 0.7f, settings[2].top_k = 50;
  settings[3].temperature = 1.0f, settings[3].top_p = 0.9f;
  settings[4].temperature = 0.8f, settings[4].min_p = 0.05f;
  settings[5].temperature = 0.6f, settings[5].top_k = 20, settings[5].top_p = 0.8f,
  settings[5].repetition_penalty = 1.1f;
  settings[6].temperature = 1.5f;
  std::vector<int32_t> history(300);
  std::uniform_int_distribution<int> pick(0, 1999);  // many duplicates
  for (int32_t& id : history) id = pick(rng_);
  Tensor ghistory = to_gpu(ints(history));
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  int index = 0;
  for (const SamplingParams& p : settings) {
    for (int trial = 0; trial < 8; ++trial) {
      SCOPED_TRACE(::testing::Message() << "setting " << index << " trial " << trial);
      Tensor logits = Tensor::empty({vocab}, DType::F32);
      std::normal_distribution<float> normal(0.0f, 4.0f);
      for (int64_t i = 0; i < vocab; ++i) logits.data<float>()[i] = normal(rng_);
      logits.data<float>()[7] = logits.data<float>()[9];  // a tie
      float u = unit(rng_);
      Tensor want = ints({-2});
      Tensor cpu_logits = copy(logits);
      cpu_.sample(cpu_logits, ints(history), p, u, want);
      Tensor glogits = to_gpu(logits, DType::F32);
      Tensor next = to_gpu(ints({-2}));
      gpu_->sample(glogits, p.repetition_penalty != 1.0f ? ghistory : Tensor(), p, u, next);
      EXPECT_EQ(to_host(next).data<int32_t>()[0], want.data<int32_t>()[0]);
    }
    ++index;
  }
}

TEST_P(CudaOps, GreedyPicksTheLowestIdOfTiedMaxima) {
  TRACE_SEED();
  // The greedy argmax reduces per block, then across blocks: equal maxima far apart, NaNs, a
  // vocabulary that is not a multiple of the 16-byte loads, and one with nothing but NaN.
  struct Case {
    int64_t vocab;
    std::vector<std::pair<int64_t, float>> set;
    int32_t want;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Case> cases = {
      {151936, {{150000, 100.0f}, {1234, 100.0f}, {3, nan}, {5000, nan}}, 1234},
      {151936, {{151935, 100.0f}}, 151935},
      {1001, {{1000, 100.0f}, {999, nan}}, 1000},
      {3, {{0, nan}, {1, nan}, {2, nan}}, 0},
  };
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.vocab);
    Tensor logits = random({c.vocab});
    for (auto [id, value] : c.set) logits.data<float>()[id] = value;
    Tensor want = ints({-2});
    Tensor cpu_logits = copy(logits);
    cpu_.sample(cpu_logits, Tensor(), greedy, 0.0f, want);
    EXPECT_EQ(want.data<int32_t>()[0], c.want);
    Tensor next = to_gpu(ints({-2}));
    Tensor glogits = to_gpu(logits, DType::F32);
    gpu_->sample(glogits, Tensor(), greedy, 0.0f, next);
    EXPECT_EQ(to_host(next).data<int32_t>()[0], c.want);
  }
}

TEST_P(CudaOps, RowPenaltiesAndGreedyPicksMatchCpu) {
  TRACE_SEED();
  // Full and odd vocabularies (the 16-byte loads and the scalar walk), rows without repeats,
  // repeats that decide the pick, ties and NaNs.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t vocab : {int64_t(151936), int64_t(1001)}) {
    SCOPED_TRACE(vocab);
    const int rows = 6;
    Tensor logits = random({rows, vocab});
    std::vector<int32_t> ids, offsets = {0};
    std::vector<float> penalties;
    std::uniform_int_distribution<int32_t> id(0, int32_t(vocab) - 1);
    for (int r = 0; r < rows; ++r) {
      std::vector<int32_t> row;
      for (int i = 0; i < (r % 3) * 40; ++i) row.push_back(id(rng_));
      std::sort(row.begin(), row.end());
      row.erase(std::unique(row.begin(), row.end()), row.end());
      std::erase_if(row, [](int32_t i) { return i == 10 || i == 20; });
      if (r == 1) {  // the best id, penalized below the second
        logits.data<float>()[r * vocab + 10] = 9.0f;
        logits.data<float>()[r * vocab + 20] = 8.0f;
        row.push_back(10);
      }
      ids.insert(ids.end(), row.begin(), row.end());
      offsets.push_back(int32_t(ids.size()));
      penalties.push_back(1.0f + 0.25f * float(r));
    }
    logits.data<float>()[3 * vocab + 5] = logits.data<float>()[3 * vocab + 700] = 50.0f;
    logits.data<float>()[4 * vocab + 2] = nan;
    logits.data<float>()[4 * vocab + 900] = 50.0f;
    Tensor host_penalties = Tensor::empty({rows}, DType::F32);
    std::memcpy(host_penalties.data(), penalties.data(), penalties.size() * 4);
    Tensor want_logits = copy(logits);
    Tensor want = ints(std::vector<int32_t>(rows, -2));
    cpu_.penalize_repeats(want_logits, ints(ids), ints(offsets), host_penalties);
    cpu_.argmax_rows(want_logits, want);
    EXPECT_EQ(want.data<int32_t>()[1], 20);
    EXPECT_EQ(want.data<int32_t>()[3], 5);
    EXPECT_EQ(want.data<int32_t>()[4], 900);
    Tensor glogits = to_gpu(logits, DType::F32);
    Tensor next = to_gpu(ints(std::vector<int32_t>(rows, -2)));
    gpu_->penalize_repeats(glogits, to_gpu(ints(ids)), to_gpu(ints(offsets)),
                           to_gpu(host_penalties, DType::F32));
    gpu_->argmax_rows(glogits, next);
    Tensor got = to_host(next), got_logits = to_host(glogits);
    for (int r = 0; r < rows; ++r) EXPECT_EQ(got.data<int32_t>()[r], want.data<int32_t>()[r]) << r;
    for (int64_t i = 0; i < logits.numel(); ++i) {
      if (std::isnan(want_logits.data<float>()[i])) continue;
      ASSERT_EQ(got_logits.data<float>()[i], want_logits.data<float>()[i]) << i;
    }
  }
}

TEST_P(CudaOps, BatchInvariantRowsDoNotDependOnTheirCompany) {
  TRACE_SEED();
  // Under batch invariance a row's product, norm and attention come out the same, bit for bit,
  // alone and among other rows (3B's decoder shapes: q/k/v, o, gate/up, down; and its lm_head's).
  gpu_->set_batch_invariant(true);
  struct Shape2 {
    int64_t n, k;
  };
  for (Shape2 w_shape : {Shape2{2560, 2048}, Shape2{2048, 2048}, Shape2{22016, 2048},
                         Shape2{2048, 11008}, Shape2{151936, 2048}}) {
    SCOPED_TRACE(cat(w_shape.n, "x", w_shape.k));
    const size_t mark = gpu_->workspace_mark();
    Tensor w = to_gpu(random({w_shape.n, w_shape.k}, 0.02f));  // lm_head's outgrows the weights
    const int64_t most = 130;
    Tensor x = to_gpu(random({most, w_shape.k}));
    Tensor all = gpu_->alloc({most, w_shape.n}, DType::F32);
    gpu_->linear(x, w, nullptr, all);
    const Tensor want = to_host(all.rows(0, 1));
    for (int64_t m : {1, 2, 9, 64, 100}) {
      Tensor some = gpu_->alloc({m, w_shape.n}, DType::F32);
      gpu_->linear(x.rows(0, m), w, nullptr, some);
      const Tensor got = to_host(some.rows(0, 1));
      EXPECT_EQ(std::memcmp(got.data(), want.data(), want.nbytes()), 0) << m << " rows";
    }
    gpu_->workspace_release(mark);
  }
  {
    const size_t mark = gpu_->workspace_mark();
    const int64_t cols = 2048, most = 100;
    Tensor norm_w = gpu_->upload_weight(random({cols}), dtype());
    Tensor x = to_gpu(random({most, cols})), delta = to_gpu(random({most, cols}));
    Tensor out_all = gpu_->alloc({most, cols}, dtype()), out_one = gpu_->alloc({1, cols}, dtype());
    gpu_->rms_norm(x, norm_w, 1e-6f, out_all);
    Tensor row = x.rows(0, 1);
    gpu_->rms_norm(row, norm_w, 1e-6f, out_one);
    EXPECT_EQ(
        std::memcmp(to_host(out_all.rows(0, 1)).data(), to_host(out_one).data(), size_t(cols) * 4),
        0)
        << "rms_norm";
    Tensor residual_all = to_gpu(random({most, cols}));
    Tensor residual_one = gpu_->alloc({1, cols}, dtype());
    Tensor first = to_host(residual_all.rows(0, 1));
    gpu_->copy_from_host(first, residual_one);
    gpu_->add_rms_norm(residual_all, delta, norm_w, 1e-6f, out_all);
    Tensor delta_one = delta.rows(0, 1);
    gpu_->add_rms_norm(residual_one, delta_one, norm_w, 1e-6f, out_one);
    EXPECT_EQ(
        std::memcmp(to_host(out_all.rows(0, 1)).data(), to_host(out_one).data(), size_t(cols) * 4),
        0)
        << "add_rms_norm";
    gpu_->workspace_release(mark);
  }
  {
    // A decode row alone, then beside a prefill chunk and other decode rows.
    const int hq = 16, hkv = 2, d = 128;
    auto run = [&](const std::vector<int>& q_lens, const std::vector<int>& k_lens) {
      std::vector<int32_t> cu_q{0}, cu_k{0};
      int max_q = 0, max_k = 0;
      for (size_t i = 0; i < q_lens.size(); ++i) {
        cu_q.push_back(cu_q.back() + q_lens[i]);
        cu_k.push_back(cu_k.back() + k_lens[i]);
        max_q = std::max(max_q, q_lens[i]);
        max_k = std::max(max_k, k_lens[i]);
      }
      // Each tensor from its own seed: the first segment's rows, first in each, are the same in
      // every run.
      auto fill = [&](const Shape& shape, uint32_t seed) {
        std::mt19937 fill_rng(seed);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        Tensor t = Tensor::empty(shape, DType::F32);
        for (int64_t i = 0; i < t.numel(); ++i)
          t.data<float>()[i] = round_to(normal(fill_rng), dtype());
        return t;
      };
      Tensor k = fill({cu_k.back(), hkv, d}, 1), v = fill({cu_k.back(), hkv, d}, 2);
      Tensor q = fill({cu_q.back(), hq, d}, 3);
      AttentionSegments seg{to_gpu(ints(cu_q)),
                            to_gpu(ints(cu_k)),
                            int(q_lens.size()),
                            max_q,
                            max_k,
                            true,
                            1.0f / std::sqrt(float(d)),
                            {},
                            0};
      Tensor out = gpu_->alloc(q.shape(), dtype());
      gpu_->attention(to_gpu(q), to_gpu(k), to_gpu(v), seg, out);
      return to_host(out.rows(0, 1));
    };
    const size_t mark = gpu_->workspace_mark();
    const Tensor alone = run({1}, {700});
    const Tensor together = run({1, 300, 1, 1}, {700, 900, 20, 4000});
    EXPECT_EQ(std::memcmp(alone.data(), together.data(), alone.nbytes()), 0) << "attention";
    gpu_->workspace_release(mark);
  }
  gpu_->set_batch_invariant(false);
}

TEST_P(CudaOps, CapturedGraphReplaysWithNewInputs) {
  TRACE_SEED();
  const int64_t n = 512, k = 256;
  Tensor w = random({n, k}, 0.05f), norm_w = random({k});
  Tensor gw = gpu_->upload_weight(w, dtype()), gnorm = gpu_->upload_weight(norm_w, dtype());
  Tensor gx = gpu_->alloc({1, k}, dtype()), normed = gpu_->alloc({1, k}, dtype());
  Tensor out = gpu_->alloc({1, n}, DType::F32);
  auto step = [&] {
    gpu_->rms_norm(gx, gnorm, 1e-6f, normed);
    gpu_->linear(normed, gw, nullptr, out);
  };
  for (int replay = 0; replay < 3; ++replay) {
    Tensor x = random({1, k});
    gpu_->copy_from_host(x, gx);
    gpu_->run_captured(7, step);
    Tensor normed_cpu = Tensor::empty({1, k}, DType::F32), want = Tensor::empty({1, n}, DType::F32);
    cpu_.rms_norm(x, norm_w, 1e-6f, normed_cpu);
    cpu_.linear(normed_cpu, w, nullptr, want);
    EXPECT_LT(rel_l2(to_host(out), want), tolerance()) << "replay " << replay;
  }
}

TEST_P(CudaOps, ReadsCollectTheValueOfTheirTime) {
  // begin_read is ordered with the ops: a later write to the tensor does not reach an earlier read.
  Tensor dev = gpu_->alloc({2}, DType::I32);
  Tensor host = Tensor::empty({2}, DType::I32), back = Tensor::empty({2}, DType::I32);
  std::vector<int64_t> tickets;
  for (int32_t i = 0; i < Backend::kPendingReads; ++i) {
    host.data<int32_t>()[0] = 7 * i, host.data<int32_t>()[1] = -i;
    gpu_->copy_from_host(host, dev);
    tickets.push_back(gpu_->begin_read(dev));
  }
  for (int32_t i = Backend::kPendingReads - 1; i >= 0; --i) {
    gpu_->end_read(tickets[size_t(i)], back);
    EXPECT_EQ(back.data<int32_t>()[0], 7 * i);
    EXPECT_EQ(back.data<int32_t>()[1], -i);
  }
  EXPECT_THROW(gpu_->end_read(tickets[0], back), Error);
}

TEST_P(CudaOps, CapturedStepsPublishTheirRows) {
  // A replayed graph publishes row `row` of a table under tag `tag`, both advanced on the device
  // by the graph itself (as a decode step does), and the host finds each replay's row by tag.
  std::vector<int32_t> values(64);
  std::iota(values.begin(), values.end(), 1000);
  Tensor table = to_gpu(ints(values)).view({32, 2});
  Tensor indices = to_gpu(ints({3, 500}));  // row, tag
  Tensor row = indices.rows(0, 1), tag = indices.rows(1, 1);
  Tensor back = Tensor::empty({1, 2}, DType::I32);
  for (int replay = 0; replay < 3 * Backend::kPendingReads; ++replay) {
    gpu_->run_captured(8, [&] {
      gpu_->publish_row(table, row, tag);
      gpu_->increment(indices);
    });
    gpu_->wait_published(500 + replay, back);
    EXPECT_EQ(back.data<int32_t>()[0], 1000 + 2 * (3 + replay)) << "replay " << replay;
    EXPECT_EQ(back.data<int32_t>()[1], 1001 + 2 * (3 + replay)) << "replay " << replay;
  }
  gpu_->synchronize();
  EXPECT_THROW(gpu_->wait_published(400, back), Error) << "never published";
}

TEST_P(CudaOps, ErrorsAreSentences) {
  Tensor gx = gpu_->alloc({2, 8}, dtype());
  Tensor gw = gpu_->alloc({4, 9}, dtype());
  Tensor out = gpu_->alloc({2, 4}, dtype());
  EXPECT_THROW(gpu_->linear(gx, gw, nullptr, out), Error);
  EXPECT_THROW(gpu_->alloc({int64_t(1) << 40}, dtype()), Error);
}

// A packed 4-bit weight (backend/packed_int4.h) of random values, zero points and scales.
Tensor random_int4(std::mt19937& rng, int64_t n, int64_t k, int64_t group) {
  const Int4Layout layout = Int4Layout::make(n, k, group, "test weight");
  std::uniform_int_distribution<int> nibble(0, 15);
  std::uniform_real_distribution<float> scale(0.002f, 0.01f);
  std::vector<uint8_t> q(size_t(n * k)), zeros(size_t(n * layout.groups()));
  std::vector<uint16_t> scales(zeros.size());
  for (auto& v : q) v = uint8_t(nibble(rng));
  for (auto& z : zeros) z = uint8_t(nibble(rng));
  for (auto& v : scales) v = float_to_fp16(scale(rng));
  return pack_int4(q.data(), zeros.data(), scales.data(), layout);
}

// linear with packed 4-bit weights: the int4 GEMV (one row per block for K >= 8192, two
// otherwise; groups that are multiples of 32), and the dequantized slabs with cuBLASLt (more
// rows, other groups, the GEMV turned off; several slabs for the largest weight).
TEST_P(CudaOps, LinearInt4MatchesCpu) {
  TRACE_SEED();
  struct Case {
    int64_t m, n, k, group;
    bool bias, f32_out, gemv;
  };
  for (Case c :
       {Case{1, 2048, 2048, 128, false, false, true}, Case{1, 2048, 2048, 128, false, false, false},
        Case{3, 1000, 512, 128, true, false, true}, Case{8, 384, 1024, 64, true, true, true},
        Case{1, 1001, 8192, 128, true, false, true}, Case{2, 300, 18944, 128, false, true, true},
        Case{1, 96, 96, 32, true, false, true}, Case{1, 64, 48, 16, true, false, true},
        Case{64, 512, 768, 128, true, false, true}, Case{100, 5000, 4096, 128, true, true, true},
        // Rows of 8 bytes over a multiple of 16 (an odd number of groups over 4 with group
        // 128): the 3B's down projection, then a short one, through the GEMV and the slabs.
        Case{1, 700, 11008, 128, true, false, true}, Case{4, 300, 768, 128, false, true, true},
        Case{20, 300, 11008, 128, true, false, true}}) {
    SCOPED_TRACE(::testing::Message()
                 << c.m << "x" << c.n << "x" << c.k << " group " << c.group << " bias " << c.bias
                 << " f32 " << c.f32_out << " gemv " << c.gemv);
    gpu_->set_prefer_gemv(c.gemv);
    Tensor x = random({c.m, c.k}), b = random({c.n});
    Tensor w = random_int4(rng_, c.n, c.k, c.group);
    Tensor want = Tensor::empty({c.m, c.n}, DType::F32);
    cpu_.linear(x, w, c.bias ? &b : nullptr, want);
    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight(w, DType::Q4), gb = gpu_->upload_weight(b, dtype());
    Tensor out = poisoned({c.m, c.n}, c.f32_out ? DType::F32 : dtype());
    gpu_->linear(to_gpu(x), gw, c.bias ? &gb : nullptr, out);
    EXPECT_LT(rel_l2(to_host(out), want), tolerance());
    gpu_->workspace_release(mark);
  }
  gpu_->set_prefer_gemv(true);
}

// The decoder's fused ops with stacked packed weights compose from the int4 product.
TEST_P(CudaOps, FusedOpsWithInt4WeightsMatchCpu) {
  TRACE_SEED();
  const int hq = 4, hkv = 2, d = 128;
  const int64_t hidden = 512, f = 384, cache = 40, width = (hq + 2 * hkv) * d;
  const RopeSpec spec = text_rope_spec(d);
  const Tensor wq = random_int4(rng_, hq * d, hidden, 128),
               wk = random_int4(rng_, hkv * d, hidden, 128),
               wv = random_int4(rng_, hkv * d, hidden, 128);
  const Tensor gate = random_int4(rng_, f, hidden, 128), up = random_int4(rng_, f, hidden, 128);
  auto stacked = [](const std::vector<Tensor>& parts) {
    Shape shape = parts[0].shape();
    shape[0] = 0;
    for (const Tensor& p : parts) shape[0] += p.dim(0);
    Tensor out = Tensor::empty(shape, DType::Q4);
    size_t offset = 0;
    for (const Tensor& p : parts) {
      std::memcpy(out.data<uint8_t>() + offset, p.data(), p.nbytes());
      offset += p.nbytes();
    }
    return out;
  };
  const Tensor w_qkv = stacked({wq, wk, wv}), w_gate_up = stacked({gate, up});
  for (int64_t m : {int64_t(1), int64_t(20)}) {
    SCOPED_TRACE(testing::Message() << m << " rows");
    std::vector<int32_t> pos(static_cast<size_t>(3 * m)), slot(static_cast<size_t>(m));
    std::uniform_int_distribution<int> dist(0, 30000);
    for (int32_t& p : pos) p = dist(rng_);
    std::iota(slot.begin(), slot.end(), int32_t(cache - m));
    Tensor positions = ints(pos).view({3, m}), slots = ints(slot);
    Tensor x = random({m, hidden}), b = random({width});
    Tensor k_cache = random({cache, hkv, d}), v_cache = random({cache, hkv, d});
    Tensor qkv = Tensor::empty({m, width}, DType::F32);
    Tensor want_q = Tensor::empty({m, hq, d}, DType::F32);
    Tensor want_k = copy(k_cache), want_v = copy(v_cache);
    cpu_.linear_rope_qkv(x, w_qkv, b, QkvProducts::kPerProjection, positions, spec, slots, qkv,
                         want_q, want_k, want_v);
    Tensor gate_up = Tensor::empty({m, 2 * f}, DType::F32);
    Tensor want_mlp = Tensor::empty({m, f}, DType::F32);
    cpu_.linear_swiglu(x, w_gate_up, nullptr, gate_up, want_mlp);

    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight_stacked({wq, wk, wv}, DType::Q4);
    Tensor gb = gpu_->upload_weight(b, dtype());
    Tensor gqkv = gpu_->alloc({m, width}, dtype());
    Tensor gq = poisoned({m, hq, d}, dtype());
    Tensor gk = to_gpu(k_cache), gv = to_gpu(v_cache);
    Tensor gx = to_gpu(x);
    gpu_->linear_rope_qkv(gx, gw, gb, QkvProducts::kPerProjection, to_gpu(positions, DType::I32),
                          spec, to_gpu(slots, DType::I32), gqkv, gq, gk, gv);
    EXPECT_LT(rel_l2(to_host(gq), want_q), tolerance());
    EXPECT_LT(rel_l2(to_host(gk), want_k), tolerance());
    EXPECT_LT(rel_l2(to_host(gv), want_v), tolerance());
    Tensor ggu = gpu_->upload_weight_stacked({gate, up}, DType::Q4);
    Tensor gscratch = gpu_->alloc({m, 2 * f}, dtype());
    Tensor gmlp = poisoned({m, f}, dtype());
    gpu_->linear_swiglu(gx, ggu, nullptr, gscratch, gmlp);
    EXPECT_LT(rel_l2(to_host(gmlp), want_mlp), tolerance());
    gpu_->workspace_release(mark);
  }
}

// An FP8 weight (backend/packed_fp8.h) quantized from random values, each row of its own
// magnitude (so each row's scale matters).
Tensor random_fp8(std::mt19937& rng, int64_t n, int64_t k) {
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-8, 0);
  Tensor w = Tensor::empty({n, k}, DType::F32);
  for (int64_t j = 0; j < n; ++j) {
    const float magnitude = std::ldexp(1.0f, exponent(rng));
    for (int64_t i = 0; i < k; ++i) w.data<float>()[j * k + i] = value(rng) * magnitude;
  }
  return quantize_fp8(w, "test weight");
}

// linear with FP8 weights: the FP8 GEMV (one row per block for K >= 8192, two or four
// otherwise, 1 to 8 input rows), and the dequantized slabs with cuBLASLt (more rows, the GEMV
// turned off; several slabs for the largest weight).
TEST_P(CudaOps, LinearFp8MatchesCpu) {
  TRACE_SEED();
  struct Case {
    int64_t m, n, k;
    bool bias, f32_out, gemv;
  };
  for (Case c : {Case{1, 2048, 2048, false, false, true}, Case{1, 2048, 2048, false, false, false},
                 Case{3, 1000, 512, true, false, true}, Case{8, 384, 1024, true, true, true},
                 Case{5, 256, 3584, false, false, true}, Case{1, 1001, 8192, true, false, true},
                 Case{2, 300, 18944, false, true, true}, Case{1, 96, 96, true, false, true},
                 Case{1, 64, 48, true, false, true}, Case{64, 512, 768, true, false, true},
                 Case{100, 5000, 4096, true, true, true}}) {
    SCOPED_TRACE(::testing::Message() << c.m << "x" << c.n << "x" << c.k << " bias " << c.bias
                                      << " f32 " << c.f32_out << " gemv " << c.gemv);
    gpu_->set_prefer_gemv(c.gemv);
    Tensor x = random({c.m, c.k}), b = random({c.n});
    Tensor w = random_fp8(rng_, c.n, c.k);
    Tensor want = Tensor::empty({c.m, c.n}, DType::F32);
    cpu_.linear(x, w, c.bias ? &b : nullptr, want);
    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight(w, DType::F8E4M3), gb = gpu_->upload_weight(b, dtype());
    Tensor out = poisoned({c.m, c.n}, c.f32_out ? DType::F32 : dtype());
    gpu_->linear(to_gpu(x), gw, c.bias ? &gb : nullptr, out);
    EXPECT_LT(rel_l2(to_host(out), want), tolerance());
    gpu_->workspace_release(mark);
  }
  gpu_->set_prefer_gemv(true);
}

// The decoder's fused ops with stacked FP8 weights compose from the FP8 product; also inside a
// captured decode step (a CUDA graph), as the decoder runs them.
TEST_P(CudaOps, FusedOpsWithFp8WeightsMatchCpu) {
  TRACE_SEED();
  const int hq = 4, hkv = 2, d = 128;
  const int64_t hidden = 512, f = 384, cache = 40, width = (hq + 2 * hkv) * d;
  const RopeSpec spec = text_rope_spec(d);
  const Tensor wq = random_fp8(rng_, hq * d, hidden), wk = random_fp8(rng_, hkv * d, hidden),
               wv = random_fp8(rng_, hkv * d, hidden);
  const Tensor gate = random_fp8(rng_, f, hidden), up = random_fp8(rng_, f, hidden);
  auto stacked = [](const std::vector<Tensor>& parts) {
    Shape shape = parts[0].shape();
    shape[0] = 0;
    for (const Tensor& p : parts) shape[0] += p.dim(0);
    Tensor out = Tensor::empty(shape, DType::F8E4M3);
    size_t offset = 0;
    for (const Tensor& p : parts) {
      std::memcpy(out.data<uint8_t>() + offset, p.data(), p.nbytes());
      offset += p.nbytes();
    }
    return out;
  };
  const Tensor w_qkv = stacked({wq, wk, wv}), w_gate_up = stacked({gate, up});
  for (int64_t m : {int64_t(1), int64_t(20)}) {
    SCOPED_TRACE(testing::Message() << m << " rows");
    std::vector<int32_t> pos(static_cast<size_t>(3 * m)), slot(static_cast<size_t>(m));
    std::uniform_int_distribution<int> dist(0, 30000);
    for (int32_t& p : pos) p = dist(rng_);
    std::iota(slot.begin(), slot.end(), int32_t(cache - m));
    Tensor positions = ints(pos).view({3, m}), slots = ints(slot);
    Tensor x = random({m, hidden}), b = random({width});
    Tensor k_cache = random({cache, hkv, d}), v_cache = random({cache, hkv, d});
    Tensor qkv = Tensor::empty({m, width}, DType::F32);
    Tensor want_q = Tensor::empty({m, hq, d}, DType::F32);
    Tensor want_k = copy(k_cache), want_v = copy(v_cache);
    cpu_.linear_rope_qkv(x, w_qkv, b, QkvProducts::kPerProjection, positions, spec, slots, qkv,
                         want_q, want_k, want_v);
    Tensor gate_up = Tensor::empty({m, 2 * f}, DType::F32);
    Tensor want_mlp = Tensor::empty({m, f}, DType::F32);
    cpu_.linear_swiglu(x, w_gate_up, nullptr, gate_up, want_mlp);

    size_t mark = gpu_->workspace_mark();
    Tensor gw = gpu_->upload_weight_stacked({wq, wk, wv}, DType::F8E4M3);
    Tensor gb = gpu_->upload_weight(b, dtype());
    Tensor gqkv = gpu_->alloc({m, width}, dtype());
    Tensor gq = poisoned({m, hq, d}, dtype());
    Tensor gk = to_gpu(k_cache), gv = to_gpu(v_cache);
    Tensor gx = to_gpu(x);
    Tensor gpositions = to_gpu(positions, DType::I32), gslots = to_gpu(slots, DType::I32);
    Tensor ggu = gpu_->upload_weight_stacked({gate, up}, DType::F8E4M3);
    // Warm-up runs the slabs' products of every bucket up to 32 rows (the model's warm_up).
    gpu_->prepare_linear_rope_qkv(gw, QkvProducts::kPerProjection, hq * d, 32);
    gpu_->prepare_linear(ggu, false, dtype(), 32);
    Tensor gscratch = gpu_->alloc({m, 2 * f}, dtype());
    Tensor gmlp = poisoned({m, f}, dtype());
    const auto step = [&] {
      gpu_->linear_rope_qkv(gx, gw, gb, QkvProducts::kPerProjection, gpositions, spec, gslots, gqkv,
                            gq, gk, gv);
      gpu_->linear_swiglu(gx, ggu, nullptr, gscratch, gmlp);
    };
    if (m == 1)
      gpu_->run_captured(100, step);
    else
      step();
    EXPECT_LT(rel_l2(to_host(gq), want_q), tolerance());
    EXPECT_LT(rel_l2(to_host(gk), want_k), tolerance());
    EXPECT_LT(rel_l2(to_host(gv), want_v), tolerance());
    EXPECT_LT(rel_l2(to_host(gmlp), want_mlp), tolerance());
    gpu_->workspace_release(mark);
  }
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaOps, ::testing::Values(DType::BF16, DType::F16),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

}  // namespace
}  // namespace qwenvl

#endif  // QWENVL_HAVE_CUDA
