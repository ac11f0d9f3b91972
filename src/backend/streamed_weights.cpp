#include "backend/streamed_weights.h"

#include <cstring>

#include "backend/backend.h"
#include "backend/stacked_shape.h"
#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

float element(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::BF16:
      return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::F16:
      return fp16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::F32:
      return static_cast<const float*>(base)[i];
    default:
      fail_internal("a streamed weight must be a float tensor, not ", dtype_name(dtype));
  }
}

void store(void* base, DType dtype, int64_t i, float value) {
  switch (dtype) {
    case DType::BF16:
      static_cast<uint16_t*>(base)[i] = float_to_bf16(value);
      return;
    case DType::F16:
      static_cast<uint16_t*>(base)[i] = float_to_fp16(value);
      return;
    case DType::F32:
      static_cast<float*>(base)[i] = value;
      return;
    default:
      fail_internal("a streamed weight must be a float tensor, not ", dtype_name(dtype));
  }
}

// n elements from src to dst, converting where the dtypes differ (rounding to nearest even, as
// the backends' uploads do); gigabytes at load, so on every core.
void copy_converted(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  const size_t in = dtype_size(src_dtype), out = dtype_size(dst_dtype);
  ThreadPool::global().parallel_for(n, 1 << 20, [&](int64_t begin, int64_t end) {
    const char* s = static_cast<const char*>(src) + size_t(begin) * in;
    char* d = static_cast<char*>(dst) + size_t(begin) * out;
    if (src_dtype == dst_dtype) {
      std::memcpy(d, s, size_t(end - begin) * in);
      return;
    }
    for (int64_t i = 0; i < end - begin; ++i) store(d, dst_dtype, i, element(s, src_dtype, i));
  });
}

}  // namespace

void StreamedWeights::init(char* host, size_t host_bytes, char* slots, size_t slot_bytes,
                           int slot_count, Device device) {
  QWENVL_CHECK(slot_count >= 2, "streaming needs at least two slots, not ", slot_count);
  *this = StreamedWeights();
  host_ = host;
  host_bytes_ = host_bytes;
  slots_ = slots;
  slot_bytes_ = slot_bytes;
  slot_count_ = slot_count;
  device_ = device;
}

void StreamedWeights::begin_group(int sequence) {
  if (!ready()) fail_internal("streamed weights need reserve_streaming() first");
  QWENVL_CHECK(!open_, "a streamed group is open already");
  QWENVL_CHECK(sequence >= 0, "sequence ", sequence);
  if (size_t(sequence) >= sequence_ids_.size()) sequence_ids_.resize(size_t(sequence) + 1);
  current_ =
      Group{sequence, int(sequence_ids_[size_t(sequence)].size()), allocation_size(host_used_), 0};
  open_ = true;
}

Tensor StreamedWeights::add(const std::vector<Tensor>& parts, DType dtype) {
  QWENVL_CHECK(open_, "streamed weights are added inside a group");
  const Shape shape = stacked_shape(parts, "streamed upload");
  const size_t offset = allocation_size(current_.bytes);
  const size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  if (offset + bytes > slot_bytes_)
    fail_internal("a streamed group needs more than its slot's ", slot_bytes_, " bytes");
  if (current_.host_offset + offset + bytes > host_bytes_)
    fail_internal("the streamed weights need more than the ", host_bytes_, " host bytes reserved");
  char* dst = host_ + current_.host_offset + offset;
  for (const Tensor& part : parts) {
    if (part.device() != Device::CPU) fail_internal("a streamed weight comes from host memory");
    copy_converted(part.data(), part.dtype(), dst, dtype, part.numel());
    dst += size_t(part.numel()) * dtype_size(dtype);
  }
  current_.bytes = offset + bytes;
  char* in_slot = slots_ + size_t(current_.index % slot_count_) * slot_bytes_ + offset;
  return Tensor(in_slot, dtype, shape, device_);
}

int StreamedWeights::end_group() {
  QWENVL_CHECK(open_, "no streamed group is open");
  open_ = false;
  groups_.push_back(current_);
  host_used_ = current_.host_offset + current_.bytes;
  const int id = int(groups_.size()) - 1;
  sequence_ids_[size_t(current_.sequence)].push_back(id);
  return id;
}

const StreamedWeights::Group& StreamedWeights::group(int id) const {
  QWENVL_CHECK(id >= 0 && id < int(groups_.size()), "streamed group ", id, " of ", groups_.size());
  return groups_[size_t(id)];
}

int StreamedWeights::find(int sequence, int index) const {
  if (sequence < 0 || size_t(sequence) >= sequence_ids_.size()) return -1;
  const std::vector<int>& ids = sequence_ids_[size_t(sequence)];
  return index >= 0 && size_t(index) < ids.size() ? ids[size_t(index)] : -1;
}

}  // namespace qwenvl
