#include "vision/large_buffer.h"

#include <sys/mman.h>

#include <cstdlib>

#include "core/error.h"
#include "core/thread_pool.h"

namespace qwenvl::vision_detail {

namespace {

constexpr size_t kPage = 4096;
// Below this, faulting the pages in one thread costs less than handing them out.
constexpr size_t kTouchInParallel = size_t(1) << 20;

// Writes one byte of every 4 KB page of [p, p + bytes), spread over the thread pool: the first
// touch of a fresh page is a page fault, and in a virtual machine each costs microseconds, so a
// 1280x960 photo's decode buffer took milliseconds to fault in one thread (the zero-fill of
// vector::resize) before the decoder wrote a pixel.
void touch_pages(void* p, size_t bytes) {
  auto* bytes_at = static_cast<volatile uint8_t*>(p);
  const int64_t pages = int64_t((bytes + kPage - 1) / kPage);
  ThreadPool::global().parallel_for(pages, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) bytes_at[size_t(i) * kPage] = 0;
  });
}

}  // namespace

std::shared_ptr<void> allocate_large(size_t bytes) {
  constexpr size_t kHugePage = size_t(2) << 20;
  if (bytes < kTouchInParallel) {
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) fail("out of host memory allocating ", bytes, " bytes for an image");
    return std::shared_ptr<void>(p, std::free);
  }
  const size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) fail("out of host memory allocating ", bytes, " bytes for an image");
  madvise(p, length, MADV_HUGEPAGE);  // advice only: without THP it is plain 4 KB pages
  touch_pages(p, bytes);
  return std::shared_ptr<void>(p, [length](void* q) { munmap(q, length); });
}

void resize_pixels(std::vector<uint8_t>& v, size_t n) {
  constexpr uintptr_t kHugePage = uintptr_t(2) << 20;
  if (n >= kTouchInParallel && v.capacity() < n) {
    v.reserve(n);
    uintptr_t begin = (reinterpret_cast<uintptr_t>(v.data()) + kHugePage - 1) & ~(kHugePage - 1);
    uintptr_t end = (reinterpret_cast<uintptr_t>(v.data()) + n) & ~(kHugePage - 1);
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
    touch_pages(v.data(), n);  // the bytes are uint8_t, created by the allocation itself
  }
  v.resize(n);
}

Tensor large_tensor(Shape shape, DType dtype) {
  std::shared_ptr<void> storage = allocate_large(size_t(shape.numel()) * dtype_size(dtype));
  void* data = storage.get();
  return Tensor(data, dtype, shape, Device::CPU, std::move(storage));
}

}  // namespace qwenvl::vision_detail
