// CpuBackend: memory regions and host copies. The ops live in the cpu_<family>.cpp files.
#include "backend/cpu/cpu_backend.h"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>

#include "backend/cpu/cpu_checks.h"
#include "backend/cpu/cpu_convert.h"
#include "backend/stacked_shape.h"
#include "core/error.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

constexpr size_t kAlignment = 64;  // a cache line, and the widest vector load

size_t align_up(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

std::shared_ptr<char> aligned_buffer(size_t bytes, const char* what) {
  if (bytes == 0) return {};
  void* p = std::aligned_alloc(kAlignment, align_up(bytes));
  if (!p)
    fail_resource("out of host memory reserving ", bytes, " bytes for the CPU ", what, " region");
  return std::shared_ptr<char>(static_cast<char*>(p), std::free);
}

}  // namespace

CpuBackend::CpuBackend() {
  // OpenBLAS runs single-threaded inside our pool's threads: linear splits the output columns
  // over the pool itself (and OpenBLAS's own pool would fight ours for the cores).
  openblas_set_num_threads(1);
}

void CpuBackend::reserve(size_t weight_bytes, size_t persistent_bytes, size_t workspace_bytes) {
  // Tensors handed out earlier keep their old buffers alive through keep_alive.
  for (auto [region, bytes] :
       {std::pair{&weights_, weight_bytes}, std::pair{&persistent_, persistent_bytes},
        std::pair{&workspace_, workspace_bytes}}) {
    region->memory = aligned_buffer(bytes, region->what);
    region->capacity = bytes;
    region->used = 0;
  }
}

Tensor CpuBackend::take(Region& region, const Shape& shape, DType dtype) {
  size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  size_t begin = align_up(region.used);
  if (begin + bytes > region.capacity)
    fail_internal("the CPU ", region.what, " of ", region.capacity,
                  " bytes is exhausted: ", region.used, " are in use and a ", shape.str(), " ",
                  dtype_name(dtype), " tensor needs ", bytes, " more; reserve a larger ",
                  region.what);
  region.used = begin + bytes;
  region.peak = std::max(region.peak, region.used);
  return Tensor(region.memory.get() + begin, dtype, shape, Device::CPU, region.memory);
}

Tensor CpuBackend::upload_weight(const Tensor& host, DType dtype) {
  check_cpu(host, "upload_weight", "host");
  // The CPU computes from the weight where it lies (usually the memory-mapped checkpoint).
  if (host.dtype() == dtype) return host;
  Tensor converted = take(weights_, host.shape(), dtype);
  convert_elements(host.data(), host.dtype(), converted.data(), dtype, host.numel(),
                   "upload_weight");
  return converted;
}

Tensor CpuBackend::upload_weight_stacked(const std::vector<Tensor>& parts, DType dtype) {
  const Shape stacked = stacked_shape(parts, "CPU upload_weight_stacked");
  Tensor out = take(weights_, stacked, dtype);
  int64_t offset = 0;
  for (const Tensor& part : parts) {
    check_cpu(part, "upload_weight_stacked", "part");
    char* dst = static_cast<char*>(out.data()) + offset * int64_t(dtype_size(dtype));
    const char* src = static_cast<const char*>(part.data());
    const int64_t src_size = int64_t(dtype_size(part.dtype()));
    const int64_t dst_size = int64_t(dtype_size(dtype));
    // Gigabytes at load: copied by every core.
    ThreadPool::global().parallel_for(part.numel(), 1 << 20, [&](int64_t begin, int64_t end) {
      convert_elements(src + begin * src_size, part.dtype(), dst + begin * dst_size, dtype,
                       end - begin, "upload_weight_stacked");
    });
    offset += part.numel();
  }
  return out;
}

Tensor CpuBackend::alloc_persistent(const Shape& shape, DType dtype) {
  return take(persistent_, shape, dtype);
}

Tensor CpuBackend::alloc(const Shape& shape, DType dtype) { return take(workspace_, shape, dtype); }

void CpuBackend::workspace_release(size_t mark) {
  QWENVL_CHECK(mark <= workspace_.used, "workspace mark ", mark, " is above the ", workspace_.used,
               " bytes in use");
  workspace_.used = mark;
}

size_t CpuBackend::peak_bytes() const {
  return weights_.peak + persistent_.peak + workspace_.peak + scratch_.capacity() * sizeof(float) +
         streaming_device_bytes() + streaming_host_bytes();
}

void CpuBackend::copy_from_host(const Tensor& host, Tensor& device_dst) {
  check_cpu(host, "copy_from_host", "host");
  check_cpu(device_dst, "copy_from_host", "device_dst");
  if (host.numel() != device_dst.numel())
    fail_internal("copy_from_host: host ", host.shape().str(), " and device ",
                  device_dst.shape().str(), " hold different numbers of elements");
  convert_elements(host.data(), host.dtype(), device_dst.data(), device_dst.dtype(), host.numel(),
                   "copy_from_host");
}

void CpuBackend::copy_to_host(const Tensor& device_src, Tensor& host_dst) {
  check_cpu(device_src, "copy_to_host", "device_src");
  check_cpu(host_dst, "copy_to_host", "host_dst");
  if (host_dst.numel() != device_src.numel())
    fail_internal("copy_to_host: device ", device_src.shape().str(), " and host ",
                  host_dst.shape().str(), " hold different numbers of elements");
  convert_elements(device_src.data(), device_src.dtype(), host_dst.data(), host_dst.dtype(),
                   device_src.numel(), "copy_to_host");
}

float* CpuBackend::thread_scratch(int threads, size_t floats_per_thread) {
  // 64-byte aligned, so that full-width vector loads never straddle two cache lines.
  constexpr size_t kAlignFloats = kAlignment / sizeof(float);
  const size_t need = size_t(threads) * floats_per_thread + kAlignFloats;
  if (scratch_.size() < need) scratch_.resize(need);
  const auto address = reinterpret_cast<uintptr_t>(scratch_.data());
  return scratch_.data() + (kAlignment - address % kAlignment) % kAlignment / sizeof(float);
}

}  // namespace qwenvl
