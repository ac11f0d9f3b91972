// Backend's shared parts: begin_read's ticket bookkeeping and its default (an immediate copy), and
// the composed forms of the fused ops: what a backend that does not fuse them runs (the CPU), and
// what a fusing backend falls back to for shapes its fused kernels do not take.
#include "backend/backend.h"

#include <cstdlib>
#include <cstring>

#include "backend/residue_first.h"
#include "core/error.h"

namespace qwenvl {

int64_t Backend::open_read(const Tensor& device_src) {
  if (device_src.nbytes() > kReadBytes)
    fail_internal("begin_read takes at most ", kReadBytes, " bytes, not ", device_src.nbytes());
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
    fail_internal("end_read: ticket ", ticket, " was ended already or has expired");
  if (host_dst.dtype() != read.dtype || host_dst.numel() != read.numel)
    fail_internal("end_read: host_dst ", host_dst.shape().str(), " ", dtype_name(host_dst.dtype()),
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

void Backend::reserve_streaming(size_t slot_bytes, int slots, size_t host_bytes) {
  const size_t slot_stride = allocation_size(slot_bytes);
  const size_t host_stride = allocation_size(host_bytes);
  const size_t bytes = size_t(slots) * slot_stride + host_stride;
  void* p = bytes ? std::aligned_alloc(kAllocationAlignment, bytes) : nullptr;
  if (bytes && !p)
    fail_resource("out of host memory reserving ", bytes, " bytes of streamed weights");
  streaming_memory_ = std::shared_ptr<char>(static_cast<char*>(p), std::free);
  char* base = streaming_memory_.get();
  streamed_.init(base + size_t(slots) * slot_stride, host_bytes, base, slot_stride, slots,
                 device());
}

void Backend::use_streamed_group(int group) {
  const StreamedWeights::Group& g = streamed_.group(group);
  std::memcpy(streamed_.slot_memory(streamed_.slot_of(group)), streamed_.host_of(group), g.bytes);
}

size_t Backend::check_publish(const Tensor& table, const Tensor& row, const Tensor& tag) {
  for (const Tensor* t : {&row, &tag})
    if (t->dtype() != DType::I32 || t->numel() != 1)
      fail_internal("publish_row: row and tag must be one I32 value each, not ", t->shape().str(),
                    " ", dtype_name(t->dtype()));
  if (table.rank() < 1 || table.dim(0) == 0) fail_internal("publish_row: the table has no rows");
  const size_t row_bytes = table.nbytes() / size_t(table.dim(0));
  if (row_bytes > kReadBytes)
    fail_internal("publish_row takes rows of at most ", kReadBytes, " bytes, not ", row_bytes);
  return row_bytes;
}

// One I32 value of a device tensor [1], read now.
static int64_t read_index(Backend& backend, const Tensor& value) {
  Tensor host = Tensor::empty({1}, DType::I32);
  backend.copy_to_host(value, host);
  return host.data<int32_t>()[0];
}

void Backend::publish_row(const Tensor& table, const Tensor& row, const Tensor& tag) {
  check_publish(table, row, tag);
  const int64_t r = read_index(*this, row), t = read_index(*this, tag);
  if (r < 0 || r >= table.dim(0))
    fail_internal("publish_row: row ", r, " is outside the ", table.dim(0), " rows");
  if (t < 0) fail_internal("publish_row: tag ", t, " is negative");
  const Tensor source = table.rows(r, 1);
  Published& box = published_[size_t(t % kPendingReads)];
  box.tag = t;
  box.value = Tensor::empty(source.shape(), source.dtype());
  copy_to_host(source, box.value);
}

void Backend::wait_published(int64_t tag, Tensor& host_dst) {
  const Published& box = published_[size_t(tag >= 0 ? tag % kPendingReads : 0)];
  if (tag < 0 || box.tag != tag) fail_internal("wait_published: nothing was published as ", tag);
  if (host_dst.dtype() != box.value.dtype() || host_dst.numel() != box.value.numel())
    fail_internal("wait_published: host_dst ", host_dst.shape().str(),
                  " does not match the row published");
  std::memcpy(host_dst.data(), box.value.data(), box.value.nbytes());
}

void Backend::linear_add_rms_norm(const Tensor& x, const Tensor& w, Tensor& residual,
                                  const Tensor& norm_w, float eps, Tensor& delta, Tensor& normed) {
  linear(x, w, nullptr, delta);
  add_rms_norm(residual, delta, norm_w, eps, normed);
}

void Backend::linear_in_order(const Tensor& x, const Tensor& w, Tensor& out) {
  linear(x, w, nullptr, out);
}

void Backend::linear_residue_first(const Tensor& x, const Tensor& w, const Tensor* bias,
                                   int64_t /*k*/, int64_t /*reference_rows*/, Tensor& out) {
  linear(x, w, bias, out);
}

// The CUDA backend's packed operands (x and w with each of at most 8 parts padded by less than a
// 64-column tile) and one part's fp32 product, [rows, n] (two elements of 16 bits per value);
// nothing for a k of whole 16-byte rows, which the plain product serves.
int64_t Backend::linear_residue_first_workspace(int64_t rows, int64_t n, int64_t k) {
  if (!ResidueFirst{k}.residue()) return 0;
  const int64_t packed_width = k + kMaxResidueFirstParts * ResidueFirst::kTile;
  return (rows + n) * packed_width + 2 * rows * n;
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
