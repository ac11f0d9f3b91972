// Elementwise ops in fp32: add, silu_mul (Qwen2MLP's act_fn(gate) * up with act_fn = SiLU) and
// exact GELU (nn.GELU() with approximate='none', the vision merger's activation).
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_checks.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

constexpr int64_t kGrain = 1 << 14;  // elements per chunk: threading pays off above this

void check_f32(const Tensor& t, const char* op, const char* name) {
  check_cpu(t, op, name);
  check_dtype(t, op, name, {DType::F32});
}

}  // namespace

void CpuBackend::add(Tensor& a, const Tensor& b) {
  check_f32(a, "add", "a");
  check_f32(b, "add", "b");
  check_same_shape(a, b, "add", "a", "b");
  float* pa = a.data<float>();
  const float* pb = b.data<float>();
  ThreadPool::global().parallel_for(a.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) pa[i] += pb[i];
  });
}

void CpuBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  check_f32(gate, "silu_mul", "gate");
  check_f32(up, "silu_mul", "up");
  check_f32(out, "silu_mul", "out");
  check_same_shape(gate, up, "silu_mul", "gate", "up");
  check_same_shape(gate, out, "silu_mul", "gate", "out");
  const float* g = gate.data<float>();
  const float* u = up.data<float>();
  float* o = out.data<float>();
  ThreadPool::global().parallel_for(out.numel(), kGrain, [&](int64_t begin, int64_t end) {
    // silu(x) = x * sigmoid(x) = x / (1 + exp(-x)), as torch's CPU kernel writes it.
    for (int64_t i = begin; i < end; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  });
}

void CpuBackend::gelu(Tensor& x) {
  check_f32(x, "gelu", "x");
  float* p = x.data<float>();
  const float inv_sqrt2 = float(M_SQRT1_2);
  ThreadPool::global().parallel_for(x.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) p[i] = 0.5f * p[i] * (1.0f + std::erf(p[i] * inv_sqrt2));
  });
}

}  // namespace qwenvl
