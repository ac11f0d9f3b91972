// rms_norm and add_rms_norm, as Qwen2RMSNorm.forward computes them in fp32:
//   variance = x.pow(2).mean(-1); x = x * torch.rsqrt(variance + eps); out = weight * x.
// The weight may be bf16/f16/f32 (the checkpoint's); it is widened to fp32 exactly.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_checks.h"
#include "backend/cpu/cpu_convert.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

// The sum of squares is accumulated in double so that the fp32 mean is the correctly rounded
// one, whatever the row length; the rest is fp32 in torch's order.
void rms_norm_row(const float* x, const Tensor& w, float eps, int64_t h, float* out) {
  double sum = 0;
  for (int64_t i = 0; i < h; ++i) sum += double(x[i]) * double(x[i]);
  const float variance = float(sum / double(h));
  const float inv_rms = 1.0f / std::sqrt(variance + eps);
  for (int64_t i = 0; i < h; ++i)
    out[i] = element_as_f32(w.data(), w.dtype(), i) * (x[i] * inv_rms);
}

void check_norm_args(const char* op, const Tensor& x, const Tensor& w, const Tensor& out) {
  check_cpu(x, op, "x");
  check_cpu(w, op, "w");
  check_cpu(out, op, "out");
  check_dtype(x, op, "x", {DType::F32});
  check_dtype(out, op, "out", {DType::F32});
  check_dtype(w, op, "w", {DType::F32, DType::BF16, DType::F16});
  check_same_shape(x, out, op, "x", "out");
  if (w.numel() != last_dim(x))
    fail_internal(op, ": weight ", w.shape().str(), " does not match the last dimension of ",
                  x.shape().str());
}

}  // namespace

void CpuBackend::rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) {
  check_norm_args("rms_norm", x, w, out);
  const int64_t h = last_dim(x), rows = h ? x.numel() / h : 0;
  const float* xs = x.data<float>();
  float* os = out.data<float>();
  ThreadPool::global().parallel_for(rows, 4, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) rms_norm_row(xs + r * h, w, eps, h, os + r * h);
  });
}

void CpuBackend::add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps,
                              Tensor& out) {
  check_norm_args("add_rms_norm", residual, w, out);
  check_cpu(delta, "add_rms_norm", "delta");
  check_dtype(delta, "add_rms_norm", "delta", {DType::F32});
  check_same_shape(residual, delta, "add_rms_norm", "residual", "delta");
  const int64_t h = last_dim(residual), rows = h ? residual.numel() / h : 0;
  float* res = residual.data<float>();
  const float* d = delta.data<float>();
  float* os = out.data<float>();
  ThreadPool::global().parallel_for(rows, 4, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t i = 0; i < h; ++i) res[r * h + i] += d[r * h + i];
      rms_norm_row(res + r * h, w, eps, h, os + r * h);
    }
  });
}

}  // namespace qwenvl
