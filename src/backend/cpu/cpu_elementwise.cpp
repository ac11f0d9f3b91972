// Elementwise ops in fp32: add, swiglu (Qwen2MLP's act_fn(gate) * up with act_fn = SiLU) and
// exact GELU (nn.GELU() with approximate='none', the vision merger's activation).
#include <algorithm>
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

void CpuBackend::swiglu(const Tensor& gate_up, Tensor& out) {
  check_f32(gate_up, "swiglu", "gate_up");
  check_f32(out, "swiglu", "out");
  const int64_t f = last_dim(out), rows = f ? out.numel() / f : 0;
  if (last_dim(gate_up) != 2 * f || gate_up.numel() != 2 * out.numel())
    fail_internal("swiglu: gate_up ", gate_up.shape().str(), " must hold twice the columns of out ",
                  out.shape().str());
  const float* gu = gate_up.data<float>();
  float* o = out.data<float>();
  ThreadPool::global().parallel_for(rows, std::max<int64_t>(1, kGrain / std::max<int64_t>(f, 1)),
                                    [&](int64_t begin, int64_t end) {
                                      for (int64_t r = begin; r < end; ++r) {
                                        const float* g = gu + r * 2 * f;
                                        const float* u = g + f;
                                        // silu(x) = x * sigmoid(x) = x / (1 + exp(-x)), as torch's
                                        // CPU kernel writes it.
                                        for (int64_t j = 0; j < f; ++j)
                                          o[r * f + j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
                                      }
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
