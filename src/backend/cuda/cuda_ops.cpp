// CudaBackend's ops: shape and dtype checks (one sentence per failure), then one launch each.
#include <algorithm>
#include <utility>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_op_checks.h"
#include "backend/cuda/cuda_state.h"
#include "backend/packed_fp8.h"
#include "backend/packed_int4.h"
#include "backend/rope_qkv_shape.h"

namespace qwenvl {

using namespace cuda_checks;

namespace {

// A weight's outputs and inputs: [N, K], or the rows and columns of a packed one.
std::pair<int64_t, int64_t> weight_rows_columns(const Tensor& w) {
  if (w.dtype() == DType::Q4) return {Int4Layout::of(w).rows, Int4Layout::of(w).k};
  if (w.dtype() == DType::F8E4M3) return {Fp8Layout::of(w).rows, Fp8Layout::of(w).k};
  if (w.rank() != 2)
    fail_internal("CUDA prepare_linear: the weight must be [N, K], got ", w.shape().str());
  return {w.dim(0), w.dim(1)};
}

}  // namespace

void CudaBackend::prepare_products(const Tensor& w, DType out_dtype, int64_t max_rows,
                                   const std::function<void(const Tensor&, Tensor&)>& product,
                                   const std::function<int64_t(int64_t)>& scratch_elements) {
  on_device(w, "prepare_linear", "the weight");
  CudaState& s = *state_;
  const auto [n, k] = weight_rows_columns(w);
  // One product per power-of-two bucket of M (products of up to kGemvMaxRows rows take the GEMV,
  // which needs no plan): it makes the bucket's plan and runs its kernel once, whose first launch
  // costs milliseconds of module loading that a request would otherwise wait for. Inputs are
  // whatever the workspace holds; the output is thrown away. A bucket the workspace cannot hold
  // is left to the first request that needs it.
  int64_t m = s.prefer_gemv ? cuda::kGemvMaxRows + 1 : 1;
  while (true) {
    const int64_t bucket = LinearPlanner::bucket_rows(m);
    const int64_t rows = std::min(bucket, max_rows);
    const int64_t scratch = scratch_elements ? scratch_elements(rows) : 0;
    const size_t bytes = size_t(rows * (k + n) + scratch) * dtype_size(dtype_) + size_t(n) * 4 +
                         8 * kAllocationAlignment;
    if (s.workspace.capacity - s.workspace.used < bytes) break;
    const size_t mark = workspace_mark();
    Tensor x = alloc({rows, k}, dtype_), out = alloc({rows, n}, out_dtype);
    product(x, out);
    workspace_release(mark);
    if (bucket >= max_rows) break;
    m = bucket + 1;
  }
}

void CudaBackend::prepare_linear(const Tensor& w, bool bias, DType out_dtype, int64_t max_rows) {
  // A packed (4-bit, FP8) weight's products above the GEMV's rows run on its dequantized slabs:
  // the same calls plan them.
  const size_t mark = workspace_mark();
  Tensor b = bias ? alloc({weight_rows_columns(w).first}, dtype_) : Tensor();
  prepare_products(w, out_dtype, max_rows,
                   [&](const Tensor& x, Tensor& out) { linear(x, w, bias ? &b : nullptr, out); });
  workspace_release(mark);
}

void CudaBackend::prepare_linear_rope_qkv(const Tensor& w_qkv, QkvProducts products, int64_t q_rows,
                                          int64_t max_rows) {
  // Packed q/k/v multiply as one product (linear_rope_qkv below).
  if (is_packed(w_qkv.dtype())) return prepare_linear(w_qkv, true, dtype_, max_rows);
  const int64_t width = w_qkv.rank() == 2 ? w_qkv.dim(0) : 0;
  if (products == QkvProducts::kOne || q_rows <= 0 || q_rows >= width || (width - q_rows) % 2) {
    prepare_linear(w_qkv, true, dtype_, max_rows);
    return;
  }
  const std::vector<int64_t> blocks{q_rows, (width - q_rows) / 2, (width - q_rows) / 2};
  const size_t mark = workspace_mark();
  Tensor b = alloc({width}, dtype_);
  prepare_products(w_qkv, dtype_, max_rows, [&](const Tensor& x, Tensor& out) {
    if (!linear_row_blocks(x, w_qkv, b, out, blocks)) linear(x, w_qkv, &b, out);
  });
  workspace_release(mark);
}

void CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  if (w.dtype() == DType::Q4) return linear_int4(x, w, bias, out);
  if (w.dtype() == DType::F8E4M3) return linear_fp8(x, w, bias, out);
  const int64_t m = check_linear(x, w, bias, out, dtype_), n = w.dim(0), k = w.dim(1);
  if (m == 0) return;
  CudaState& s = *state_;
  ProfileScope scope(s.profiler, s.stream, [&] { return cat("linear ", m, "x", n, "x", k); });
  const void* bias_data = bias ? bias->data() : nullptr;
  DType bias_dtype = bias ? bias->dtype() : DType::F32;
  if (gemv_serves(s, m, k, x, w)) {
    cuda::gemv(x.data(), w.data(), bias_data, bias_dtype, out.data(), out.dtype(), int(m), int(n),
               int(k), dtype_, s.stream);
    return;
  }
  if (s.linear->run(x.data(), w.data(), bias_data, bias_dtype, out.data(), out.dtype(), m, n, k,
                    dtype_, s.stream))
    return;
  s.linear->run(x.data(), w.data(), nullptr, bias_dtype, out.data(), out.dtype(), m, n, k, dtype_,
                s.stream);
  cuda::add_bias(out.data(), out.dtype(), bias_data, bias_dtype, m, n, s.stream);
}

void CudaBackend::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  for (auto [t, what] : {Named{&x, "x"}, Named{&w, "the weight"}, Named{&out, "out"}})
    on_device(*t, "rms_norm", what);
  has_dtype(x, dtype_, "rms_norm", "x");
  has_dtype(out, dtype_, "rms_norm", "out");
  float_dtype(w, "rms_norm", "the weight");
  int64_t cols = w.numel();
  if (x.dim(-1) != cols)
    fail_internal("CUDA rms_norm: x ", x.shape().str(), " vs weight of ", cols);
  same_numel(x, out, "rms_norm");
  ProfileScope scope(state_->profiler, state_->stream,
                     [&] { return cat("rms_norm ", x.shape().str()); });
  cuda::rms_norm(x.data(), w.data(), w.dtype(), out.data(), x.numel() / cols, int(cols), eps,
                 dtype_, !state_->batch_invariant, state_->stream);
}

void CudaBackend::add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps,
                               Tensor& out) {
  for (auto [t, what] : {Named{&residual, "the residual"}, Named{&delta, "delta"},
                         Named{&w, "the weight"}, Named{&out, "out"}})
    on_device(*t, "add_rms_norm", what);
  has_dtype(residual, dtype_, "add_rms_norm", "the residual");
  has_dtype(out, dtype_, "add_rms_norm", "out");
  if (delta.dtype() != dtype_) has_dtype(delta, DType::F32, "add_rms_norm", "delta");
  float_dtype(w, "add_rms_norm", "the weight");
  int64_t cols = w.numel();
  if (residual.dim(-1) != cols)
    fail_internal("CUDA add_rms_norm: residual ", residual.shape().str(), " vs weight of ", cols);
  same_numel(residual, delta, "add_rms_norm");
  same_numel(residual, out, "add_rms_norm");
  ProfileScope scope(state_->profiler, state_->stream,
                     [&] { return cat("add_rms_norm ", residual.shape().str()); });
  cuda::add_rms_norm(residual.data(), delta.data(), delta.dtype(), w.data(), w.dtype(), out.data(),
                     residual.numel() / cols, int(cols), eps, dtype_, !state_->batch_invariant,
                     state_->stream);
}

void CudaBackend::add(Tensor& a, const Tensor& b) {
  on_device(a, "add", "a");
  on_device(b, "add", "b");
  has_dtype(a, dtype_, "add", "a");
  if (b.dtype() != dtype_) has_dtype(b, DType::F32, "add", "b");
  same_numel(a, b, "add");
  ProfileScope scope(state_->profiler, state_->stream,
                     [&] { return cat("add ", a.shape().str()); });
  cuda::add(a.data(), b.data(), b.dtype(), a.numel(), dtype_, state_->stream);
}

void CudaBackend::swiglu(const Tensor& gate_up, Tensor& out) {
  for (auto [t, what] : {Named{&gate_up, "gate_up"}, Named{&out, "out"}}) {
    on_device(*t, "swiglu", what);
    has_dtype(*t, dtype_, "swiglu", what);
  }
  const int64_t f = out.rank() ? out.dim(-1) : 1;
  if (gate_up.rank() < 1 || gate_up.dim(-1) != 2 * f || gate_up.numel() != 2 * out.numel())
    fail_internal("CUDA swiglu: gate_up ", gate_up.shape().str(),
                  " must hold twice the columns of out ", out.shape().str());
  ProfileScope scope(state_->profiler, state_->stream,
                     [&] { return cat("swiglu ", out.shape().str()); });
  cuda::swiglu(gate_up.data(), out.data(), f ? out.numel() / f : 0, f, dtype_, state_->stream);
}

void CudaBackend::linear_swiglu(const Tensor& x, const Tensor& w_gate_up, const Tensor* bias,
                                Tensor& gate_up, Tensor& out) {
  on_device(out, "linear_swiglu", "out");
  has_dtype(out, dtype_, "linear_swiglu", "out");
  const int64_t f = out.rank() ? out.dim(-1) : 1, k = w_gate_up.rank() == 2 ? w_gate_up.dim(1) : 0;
  const int64_t m = f ? out.numel() / f : 0;
  CudaState& s = *state_;
  const bool fused = gemv_serves(s, m, k, x, w_gate_up) && s.fuse_epilogues &&
                     w_gate_up.dim(0) == 2 * f && x.numel() == m * k && x.dtype() == dtype_ &&
                     w_gate_up.dtype() == dtype_ && (!bias || bias->numel() == 2 * f);
  if (!fused) {  // the product through linear (cuBLASLt), then the activation
    Backend::linear_swiglu(x, w_gate_up, bias, gate_up, out);
    return;
  }
  on_device(x, "linear_swiglu", "x");
  on_device(w_gate_up, "linear_swiglu", "the weight");
  if (bias) {
    on_device(*bias, "linear_swiglu", "the bias");
    float_dtype(*bias, "linear_swiglu", "the bias");
  }
  ProfileScope scope(s.profiler, s.stream,
                     [&] { return cat("linear_swiglu ", m, "x", 2 * f, "x", k); });
  cuda::gemv_swiglu(x.data(), w_gate_up.data(), bias ? bias->data() : nullptr,
                    bias ? bias->dtype() : DType::F32, out.data(), int(m), int(f), int(k), dtype_,
                    s.stream);
}

void CudaBackend::gelu(Tensor& x) {
  on_device(x, "gelu", "x");
  has_dtype(x, dtype_, "gelu", "x");
  ProfileScope scope(state_->profiler, state_->stream,
                     [&] { return cat("gelu ", x.shape().str()); });
  cuda::gelu(x.data(), x.numel(), dtype_, state_->stream);
}

namespace {
// Rope tables are uploaded once per distinct spec (a model has two: vision and text).
const RopeTable& rope_table(CudaState& s, const RopeSpec& spec) {
  for (const RopeTable& t : s.rope_tables)
    if (t.head_dim == spec.head_dim && t.pos_row == spec.pos_row && t.inv_freq == spec.inv_freq)
      return t;
  const size_t half = size_t(spec.head_dim / 2);
  RopeTable t{spec.head_dim, spec.pos_row, spec.inv_freq};
  t.device_pos_row = static_cast<int32_t*>(s.internal.take(half * 4, "a rope table"));
  t.device_inv_freq = static_cast<float*>(s.internal.take(half * 4, "a rope table"));
  // Synchronous copies from pageable memory: allowed inside a relaxed graph capture.
  CUDA_CHECK(cudaMemcpy(t.device_pos_row, t.pos_row.data(), half * 4, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaMemcpy(t.device_inv_freq, t.inv_freq.data(), half * 4, cudaMemcpyHostToDevice));
  s.rope_tables.push_back(std::move(t));
  return s.rope_tables.back();
}

cuda::RopeQkvArgs rope_args(CudaState& s, const RopeSpec& spec, const RopeQkvShape& shape,
                            const Tensor& positions, const Tensor& slots, Tensor& q, Tensor& k,
                            Tensor& v, const void* qkv) {
  const RopeTable& table = rope_table(s, spec);
  cuda::RopeQkvArgs args;
  args.qkv = qkv;
  args.q = q.data();
  args.k = k.data();
  args.v = v.data();
  args.slots = slots.defined() ? slots.data<int32_t>() : nullptr;
  args.positions = positions.data<int32_t>();
  args.pos_row = table.device_pos_row;
  args.inv_freq = table.device_inv_freq;
  args.tokens = shape.tokens;
  args.kv_rows = shape.kv_rows;
  args.heads_q = shape.heads_q;
  args.heads_kv = shape.heads_kv;
  args.head_dim = shape.head_dim;
  args.round_in_activation_dtype = spec.round_in_activation_dtype;
  return args;
}
}  // namespace

void CudaBackend::rope_qkv(const Tensor& qkv, const Tensor& positions, const RopeSpec& spec,
                           const Tensor& slots, Tensor& q, Tensor& k, Tensor& v) {
  for (auto [t, what] : {Named{&qkv, "qkv"}, Named{&q, "q"}, Named{&k, "k"}, Named{&v, "v"}}) {
    on_device(*t, "rope_qkv", what);
    has_dtype(*t, dtype_, "rope_qkv", what);
  }
  on_device(positions, "rope_qkv", "positions");
  if (slots.defined()) on_device(slots, "rope_qkv", "slots");
  const RopeQkvShape shape = check_rope_qkv(qkv, positions, spec, slots, q, k, v, "CUDA rope_qkv");
  CudaState& s = *state_;
  ProfileScope scope(s.profiler, s.stream, [&] { return cat("rope_qkv ", qkv.shape().str()); });
  cuda::rope_qkv(rope_args(s, spec, shape, positions, slots, q, k, v, qkv.data()), dtype_,
                 s.stream);
}

bool CudaBackend::linear_row_blocks(const Tensor& x, const Tensor& w, const Tensor& bias,
                                    Tensor& out, const std::vector<int64_t>& row_blocks) {
  const int64_t m = check_linear(x, w, &bias, out, dtype_), width = w.dim(0), k = w.dim(1);
  int64_t rows = 0;
  for (int64_t n : row_blocks) rows += n;
  if (rows != width)
    fail_internal("CUDA linear: row blocks of ", rows, " rows in all do not cover the weight ",
                  w.shape().str());
  if (m == 0) return true;
  CudaState& s = *state_;
  ProfileScope scope(s.profiler, s.stream,
                     [&] { return cat("linear by row blocks ", m, "x", width, "x", k); });
  const size_t in_size = dtype_size(dtype_), bias_size = dtype_size(bias.dtype()),
               out_size = dtype_size(out.dtype());
  int64_t row0 = 0;
  for (int64_t n : row_blocks) {
    const auto* wb = static_cast<const char*>(w.data()) + row0 * k * in_size;
    const auto* bb = static_cast<const char*>(bias.data()) + row0 * bias_size;
    auto* ob = static_cast<char*>(out.data()) + row0 * out_size;
    if (!s.linear->run(x.data(), wb, bb, bias.dtype(), ob, out.dtype(), m, n, k, dtype_, s.stream,
                       width))
      return false;
    row0 += n;
  }
  return true;
}

void CudaBackend::linear_rope_qkv(const Tensor& x, const Tensor& w_qkv, const Tensor& b_qkv,
                                  QkvProducts products, const Tensor& positions,
                                  const RopeSpec& spec, const Tensor& slots, Tensor& qkv, Tensor& q,
                                  Tensor& k, Tensor& v) {
  // Packed (4-bit, FP8) q/k/v: one product (linear_int4, linear_fp8), then the rotary pass.
  if (is_packed(w_qkv.dtype()))
    return Backend::linear_rope_qkv(x, w_qkv, b_qkv, products, positions, spec, slots, qkv, q, k,
                                    v);
  CudaState& s = *state_;
  const int64_t m = q.rank() == 3 ? q.dim(0) : 0, kdim = w_qkv.rank() == 2 ? w_qkv.dim(1) : 0;
  const bool gemv = gemv_serves(s, m, kdim, x, w_qkv);
  const bool fused = gemv && s.fuse_epilogues && x.numel() == m * kdim && x.dtype() == dtype_ &&
                     w_qkv.dtype() == dtype_ && w_qkv.dim(0) == qkv.dim(-1) &&
                     b_qkv.numel() == w_qkv.dim(0);
  if (!fused) {  // the product(s) through cuBLASLt or the GEMV, then the rotary pass
    // The GEMV computes every output on its own, whatever the product's shape.
    if (products == QkvProducts::kPerProjection && !gemv && q.rank() == 3 && k.rank() == 3) {
      const int64_t q_rows = q.dim(1) * q.dim(2), kv_rows = k.dim(1) * k.dim(2);
      if (linear_row_blocks(x, w_qkv, b_qkv, qkv, {q_rows, kv_rows, kv_rows})) {
        rope_qkv(qkv, positions, spec, slots, q, k, v);
        return;
      }
    }
    Backend::linear_rope_qkv(x, w_qkv, b_qkv, products, positions, spec, slots, qkv, q, k, v);
    return;
  }
  for (auto [t, what] :
       {Named{&x, "x"}, Named{&w_qkv, "the weight"}, Named{&b_qkv, "the bias"}, Named{&qkv, "qkv"},
        Named{&q, "q"}, Named{&k, "k"}, Named{&v, "v"}, Named{&positions, "positions"}})
    on_device(*t, "linear_rope_qkv", what);
  for (auto [t, what] : {Named{&qkv, "qkv"}, Named{&q, "q"}, Named{&k, "k"}, Named{&v, "v"}})
    has_dtype(*t, dtype_, "linear_rope_qkv", what);
  float_dtype(b_qkv, "linear_rope_qkv", "the bias");
  if (slots.defined()) on_device(slots, "linear_rope_qkv", "slots");
  const RopeQkvShape shape =
      check_rope_qkv(qkv, positions, spec, slots, q, k, v, "CUDA linear_rope_qkv");
  ProfileScope scope(s.profiler, s.stream,
                     [&] { return cat("linear_rope_qkv ", m, "x", w_qkv.dim(0), "x", kdim); });
  cuda::gemv_rope_qkv(x.data(), w_qkv.data(), b_qkv.data(), b_qkv.dtype(),
                      rope_args(s, spec, shape, positions, slots, q, k, v, nullptr), int(kdim),
                      dtype_, s.stream);
}

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v,
                            const AttentionSegments& segments, Tensor& out) {
  for (auto [t, what] : {Named{&q, "q"}, Named{&k, "k"}, Named{&v, "v"}, Named{&out, "out"}}) {
    on_device(*t, "attention", what);
    has_dtype(*t, dtype_, "attention", what);
    if (t->rank() != 3)
      fail_internal("CUDA attention: ", what, " must be [tokens, heads, head_dim]");
  }
  on_device(segments.cu_q, "attention", "cu_q");
  on_device(segments.cu_k, "attention", "cu_k");
  has_dtype(segments.cu_q, DType::I32, "attention", "cu_q");
  has_dtype(segments.cu_k, DType::I32, "attention", "cu_k");
  if (segments.cu_q.numel() < segments.segments + 1 ||
      segments.cu_k.numel() < segments.segments + 1)
    fail_internal("CUDA attention: cu_q and cu_k need segments + 1 = ", segments.segments + 1,
                  " entries");
  if (!(q.shape() == out.shape()) || !(k.shape() == v.shape()))
    fail_internal("CUDA attention: q/out ", q.shape().str(), "/", out.shape().str(), " and k/v ",
                  k.shape().str(), "/", v.shape().str(), " must match in pairs");
  int d = int(q.dim(2)), hq = int(q.dim(1)), hkv = int(k.dim(1));
  if (k.dim(2) != d) fail_internal("CUDA attention: q and k head_dim differ");
  if (hkv <= 0 || hq % hkv)
    fail_internal("CUDA attention: ", hq, " query heads are not a multiple of ", hkv, " kv heads");
  if (!cuda::flash_attention_supports(d))
    fail("CUDA attention supports head_dim 16, 32, 64, 80, 96 and 128, not ", d);
  if (segments.segments == 0 || segments.max_q == 0) return;
  cuda::AttentionArgs args;
  args.q = q.data();
  args.k = k.data();
  args.v = v.data();
  args.out = out.data();
  args.cu_q = segments.cu_q.data<int32_t>();
  args.cu_k = segments.cu_k.data<int32_t>();
  args.segments = segments.segments;
  args.max_q = segments.max_q;
  args.max_k = segments.max_k;
  args.heads_q = hq;
  args.heads_kv = hkv;
  args.head_dim = d;
  args.causal = segments.causal;
  args.scale = segments.scale;
  args.dtype = dtype_;
  if (segments.block_table.defined()) {
    // The blocks' ids are on the device: the caller (the runtime's block tables) keeps them
    // within the cache.
    on_device(segments.block_table, "attention", "block_table");
    has_dtype(segments.block_table, DType::I32, "attention", "block_table");
    if (segments.block_size <= 0 || segments.block_table.rank() != 2 ||
        segments.block_table.dim(0) < segments.segments)
      fail_internal("CUDA attention: block_table ", segments.block_table.shape().str(),
                    " with block size ", segments.block_size, " for ", segments.segments,
                    " segments");
    args.block_table = segments.block_table.data<int32_t>();
    args.block_stride = int(segments.block_table.dim(1));
    args.block_size = segments.block_size;
  }
  CudaState& s = *state_;
  ProfileScope scope(s.profiler, s.stream, [&] {
    return cat("attention ", segments.causal ? "causal" : "full", " q", q.shape().str(), " k",
               k.shape().str(), " segments ", segments.segments);
  });
  auto decode_kernel_serves = [&](const cuda::AttentionArgs& a) {
    return !s.batch_invariant && cuda::decode_attention_supports(a) &&
           cuda::decode_attention_scratch_bytes(a, s.multiprocessors) <= s.attention_scratch_bytes;
  };
  if (decode_kernel_serves(args)) {
    cuda::decode_attention(args, s.attention_scratch, s.multiprocessors, s.stream);
    return;
  }
  // A batch's decode rows before its prompt rows: the decode kernel takes the single-query
  // segments (the flash kernel would give each a 64-query tile), the flash kernel the rest.
  const int single = segments.single_query_segments;
  if (single > 0 && single < segments.segments) {
    cuda::AttentionArgs decode = args;
    decode.segments = single;
    decode.max_q = 1;
    decode.max_k = segments.single_query_max_k;
    if (decode_kernel_serves(decode)) {
      cuda::decode_attention(decode, s.attention_scratch, s.multiprocessors, s.stream);
      cuda::AttentionArgs rest = args;
      rest.segments -= single;
      rest.cu_q += single;
      rest.cu_k += single;
      if (rest.block_table) rest.block_table += int64_t(single) * rest.block_stride;
      cuda::flash_attention(rest, s.stream);
      return;
    }
  }
  cuda::flash_attention(args, s.stream);
}

void CudaBackend::gather_rows(const Tensor& src, const Tensor& indices, Tensor& out) {
  on_device(src, "gather_rows", "src");
  on_device(indices, "gather_rows", "indices");
  on_device(out, "gather_rows", "out");
  has_dtype(indices, DType::I32, "gather_rows", "indices");
  if (!(src.dtype() == out.dtype() || (is_float(src.dtype()) && is_float(out.dtype()))))
    fail_internal("CUDA gather_rows cannot convert ", dtype_name(src.dtype()), " rows to ",
                  dtype_name(out.dtype()));
  if (src.rank() < 1 || src.dim(0) == 0) fail_internal("CUDA gather_rows: src has no rows");
  int64_t row = src.numel() / src.dim(0), count = indices.numel();
  if (out.numel() != count * row)
    fail_internal("CUDA gather_rows: out ", out.shape().str(), " should hold ", count, " rows of ",
                  row);
  ProfileScope scope(state_->profiler, state_->stream,
                     [&] { return cat("gather_rows ", out.shape().str()); });
  cuda::gather_rows(src.data(), src.dtype(), src.dim(0), indices.data<int32_t>(), count, row,
                    out.data(), out.dtype(), state_->stream);
}

void CudaBackend::scatter_rows(const Tensor& src, const Tensor& indices, Tensor& dst) {
  on_device(src, "scatter_rows", "src");
  on_device(indices, "scatter_rows", "indices");
  on_device(dst, "scatter_rows", "dst");
  has_dtype(indices, DType::I32, "scatter_rows", "indices");
  if (!(src.dtype() == dst.dtype() || (is_float(src.dtype()) && is_float(dst.dtype()))))
    fail_internal("CUDA scatter_rows cannot convert ", dtype_name(src.dtype()), " rows to ",
                  dtype_name(dst.dtype()));
  if (dst.rank() < 1 || dst.dim(0) == 0) fail_internal("CUDA scatter_rows: dst has no rows");
  int64_t row = dst.numel() / dst.dim(0), count = indices.numel();
  if (src.numel() != count * row)
    fail_internal("CUDA scatter_rows: src ", src.shape().str(), " should hold ", count, " rows of ",
                  row);
  ProfileScope scope(state_->profiler, state_->stream,
                     [&] { return cat("scatter_rows ", src.shape().str()); });
  cuda::scatter_rows(src.data(), src.dtype(), indices.data<int32_t>(), count, row, dst.data(),
                     dst.dtype(), dst.dim(0), state_->stream);
}

void CudaBackend::increment(Tensor& values) {
  on_device(values, "increment", "values");
  has_dtype(values, DType::I32, "increment", "values");
  // Side-branch work may read these indices (publish_row's row and tag).
  join_side_stream(*state_);
  ProfileScope scope(state_->profiler, state_->stream,
                     [&] { return cat("increment ", values.shape().str()); });
  cuda::increment(values.data<int32_t>(), values.numel(), state_->stream);
}

void CudaBackend::sample(Tensor& logits, const Tensor& history, const SamplingParams& params,
                         float uniform, Tensor& next_token) {
  on_device(logits, "sample", "logits");
  on_device(next_token, "sample", "next_token");
  has_dtype(logits, DType::F32, "sample", "logits");
  has_dtype(next_token, DType::I32, "sample", "next_token");
  if (next_token.numel() != 1) fail_internal("CUDA sample: next_token must hold one id");
  // The same bounds as the CPU sampler, so both backends refuse the same settings.
  if (!(params.temperature >= 0))
    fail("sampling temperature must be >= 0, got ", params.temperature);
  if (params.top_k < 0) fail("sampling top_k must be >= 0, got ", params.top_k);
  if (!(params.top_p >= 0 && params.top_p <= 1))
    fail("sampling top_p must be in [0, 1], got ", params.top_p);
  if (!(params.min_p >= 0 && params.min_p <= 1))
    fail("sampling min_p must be in [0, 1], got ", params.min_p);
  if (!(params.repetition_penalty > 0))
    fail("sampling repetition_penalty must be > 0, got ", params.repetition_penalty);
  int64_t vocab = logits.numel();
  if (vocab <= 0 || vocab > int64_t(state_->sample_scratch_bytes) ||
      cuda::sample_scratch_bytes(int(vocab)) > state_->sample_scratch_bytes)
    fail("CUDA sample: a vocabulary of ", vocab, " logits is larger than the sampler supports");
  cuda::SampleArgs args;
  args.logits = logits.data<float>();
  args.vocab = int(vocab);
  if (params.repetition_penalty != 1.0f && history.defined() && history.numel() > 0) {
    on_device(history, "sample", "history");
    has_dtype(history, DType::I32, "sample", "history");
    args.history = history.data<int32_t>();
    args.history_len = int(history.numel());
  }
  args.temperature = params.temperature;
  args.top_k = params.top_k;
  args.top_p = params.top_p;
  args.min_p = params.min_p;
  args.repetition_penalty = params.repetition_penalty;
  args.uniform = uniform;
  args.next_token = next_token.data<int32_t>();
  ProfileScope scope(state_->profiler, state_->stream, [] { return std::string("sample"); });
  cuda::sample(args, state_->sample_scratch, state_->stream);
}

void CudaBackend::penalize_repeats(Tensor& logits, const Tensor& ids, const Tensor& offsets,
                                   const Tensor& penalties) {
  on_device(logits, "penalize_repeats", "logits");
  on_device(ids, "penalize_repeats", "ids");
  on_device(offsets, "penalize_repeats", "offsets");
  on_device(penalties, "penalize_repeats", "penalties");
  has_dtype(logits, DType::F32, "penalize_repeats", "logits");
  has_dtype(ids, DType::I32, "penalize_repeats", "ids");
  has_dtype(offsets, DType::I32, "penalize_repeats", "offsets");
  has_dtype(penalties, DType::F32, "penalize_repeats", "penalties");
  if (logits.rank() != 2 || offsets.numel() != logits.dim(0) + 1 ||
      penalties.numel() != logits.dim(0))
    fail_internal("CUDA penalize_repeats: logits ", logits.shape().str(), " with ", offsets.numel(),
                  " offsets and ", penalties.numel(), " penalties");
  ProfileScope scope(state_->profiler, state_->stream,
                     [] { return std::string("penalize_repeats"); });
  cuda::penalize_repeats(logits.data<float>(), int(logits.dim(0)), int(logits.dim(1)),
                         ids.data<int32_t>(), offsets.data<int32_t>(), penalties.data<float>(),
                         state_->stream);
}

void CudaBackend::argmax_rows(const Tensor& logits, Tensor& next_tokens) {
  on_device(logits, "argmax_rows", "logits");
  on_device(next_tokens, "argmax_rows", "next_tokens");
  has_dtype(logits, DType::F32, "argmax_rows", "logits");
  has_dtype(next_tokens, DType::I32, "argmax_rows", "next_tokens");
  if (logits.rank() != 2 || logits.dim(1) < 1 || next_tokens.numel() != logits.dim(0))
    fail_internal("CUDA argmax_rows: logits ", logits.shape().str(), " for ", next_tokens.numel(),
                  " tokens");
  ProfileScope scope(state_->profiler, state_->stream, [] { return std::string("argmax_rows"); });
  cuda::argmax_rows(logits.data<float>(), int(logits.dim(0)), int(logits.dim(1)),
                    next_tokens.data<int32_t>(), state_->stream);
}

}  // namespace qwenvl
