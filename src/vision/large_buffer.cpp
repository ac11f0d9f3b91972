#include "vision/large_buffer.h"

#include <sys/mman.h>

#include <cstdlib>

#include "core/error.h"

namespace qwenvl::vision_detail {

std::shared_ptr<void> allocate_large(size_t bytes) {
  constexpr size_t kHugePage = size_t(2) << 20;
  if (bytes < 2 * kHugePage) {
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) fail("out of host memory allocating ", bytes, " bytes for an image");
    return std::shared_ptr<void>(p, std::free);
  }
  const size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("out of host memory allocating ", bytes, " bytes for an image");
  madvise(p, length, MADV_HUGEPAGE);  // advice only: without THP it is plain 4 KB pages
  return std::shared_ptr<void>(p, [length](void* q) { munmap(q, length); });
}

void resize_pixels(std::vector<uint8_t>& v, size_t n) {
  constexpr uintptr_t kHugePage = uintptr_t(2) << 20;
  if (n >= 2 * kHugePage && v.capacity() < n) {
    v.reserve(n);
    uintptr_t begin = (reinterpret_cast<uintptr_t>(v.data()) + kHugePage - 1) & ~(kHugePage - 1);
    uintptr_t end = (reinterpret_cast<uintptr_t>(v.data()) + n) & ~(kHugePage - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
  v.resize(n);
}

Tensor large_tensor(Shape shape, DType dtype) {
  std::shared_ptr<void> storage = allocate_large(size_t(shape.numel()) * dtype_size(dtype));
  void* data = storage.get();
  return Tensor(data, dtype, shape, Device::CPU, std::move(storage));
}

}  // namespace qwenvl::vision_detail
