// The composed forms of Backend's fused ops: what a backend that does not fuse them runs (the
// CPU), and what a fusing backend falls back to for shapes its fused kernels do not take.
#include "backend/backend.h"

namespace qwenvl {

void Backend::linear_add_rms_norm(const Tensor& x, const Tensor& w, Tensor& residual,
                                  const Tensor& norm_w, float eps, Tensor& delta, Tensor& normed) {
  linear(x, w, nullptr, delta);
  add_rms_norm(residual, delta, norm_w, eps, normed);
}

void Backend::linear_swiglu(const Tensor& x, const Tensor& w_gate_up, const Tensor* bias,
                            Tensor& gate_up, Tensor& out) {
  linear(x, w_gate_up, bias, gate_up);
  swiglu(gate_up, out);
}

void Backend::linear_rope_qkv(const Tensor& x, const Tensor& w_qkv, const Tensor& b_qkv,
                              const Tensor& positions, const RopeSpec& spec, const Tensor& slots,
                              Tensor& qkv, Tensor& q, Tensor& k, Tensor& v) {
  linear(x, w_qkv, &b_qkv, qkv);
  rope_qkv(qkv, positions, spec, slots, q, k, v);
}

}  // namespace qwenvl
