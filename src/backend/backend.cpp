// Backend's shared parts: begin_read's ticket bookkeeping and its default (an immediate copy), and
// the composed forms of the fused ops: what a backend that does not fuse them runs (the CPU), and
// what a fusing backend falls back to for shapes its fused kernels do not take.
#include "backend/backend.h"

#include <cstring>

#include "core/error.h"

namespace qwenvl {

int64_t Backend::open_read(const Tensor& device_src) {
  if (device_src.nbytes() > kReadBytes)
    fail("begin_read takes at most ", kReadBytes, " bytes, not ", device_src.nbytes());
  const int64_t ticket = next_read_;
  reads_[size_t(ticket % kPendingReads)] =
      PendingRead{ticket, device_src.dtype(), device_src.numel()};
  ++next_read_;
  return ticket;
}

int Backend::close_read(int64_t ticket, const Tensor& host_dst) {
  const int slot = int(ticket >= 0 ? ticket % kPendingReads : 0);
  PendingRead& read = reads_[size_t(slot)];
  if (ticket < 0 || read.ticket != ticket)
    fail("end_read: ticket ", ticket, " was ended already or has expired");
  if (host_dst.dtype() != read.dtype || host_dst.numel() != read.numel)
    fail("end_read: host_dst ", host_dst.shape().str(), " ", dtype_name(host_dst.dtype()),
         " does not match the ", read.numel, " ", dtype_name(read.dtype), " values read");
  read.ticket = -1;
  return slot;
}

int64_t Backend::begin_read(const Tensor& device_src) {
  const int64_t ticket = open_read(device_src);
  Tensor& value = read_values_[size_t(ticket % kPendingReads)];
  value = Tensor::empty(device_src.shape(), device_src.dtype());
  copy_to_host(device_src, value);
  return ticket;
}

void Backend::end_read(int64_t ticket, Tensor& host_dst) {
  Tensor& value = read_values_[size_t(close_read(ticket, host_dst))];
  std::memcpy(host_dst.data(), value.data(), value.nbytes());
  value = Tensor();
}

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

// One product whatever `products` asks: this composition runs where rounding does not depend on
// the product's shape (the CPU computes in fp32).
void Backend::linear_rope_qkv(const Tensor& x, const Tensor& w_qkv, const Tensor& b_qkv,
                              QkvProducts /*products*/, const Tensor& positions,
                              const RopeSpec& spec, const Tensor& slots, Tensor& qkv, Tensor& q,
                              Tensor& k, Tensor& v) {
  linear(x, w_qkv, &b_qkv, qkv);
  rope_qkv(qkv, positions, spec, slots, q, k, v);
}

}  // namespace qwenvl
