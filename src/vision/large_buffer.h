#pragma once
// Host buffers for the big per-image arrays (pixel_values of a 12 MP photo are ~290 MB): mapped
// directly and marked MADV_HUGEPAGE so the kernel backs them with 2 MB pages. Touching fresh 4 KB
// pages one by one costs more than the patchify itself (about 3 s for 290 MB in a Firecracker VM,
// ~0.1 s on bare metal); with huge pages it is one fault per 2 MB.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace qwenvl::vision_detail {

// `bytes` of uninitialised memory, released when the last shared_ptr copy goes. Small requests
// (under 1 MB) come from malloc. (Faulting the 4 KB pages of the bicubic resize's 3.7 MB
// intermediate rows of a 1280x960 photo inside the horizontal pass would double the resize.)
std::shared_ptr<void> allocate_large(size_t bytes);

// Tensor::empty with the storage above.
Tensor large_tensor(Shape shape, DType dtype);

// v.resize(n) for a fresh pixel vector, asking for huge pages first: the memory is reserved
// (large blocks are mmapped and untouched), marked MADV_HUGEPAGE, its pages faulted in by the
// thread pool (1 MB and up), and only then zero-filled. allocate_large faults its pages the same
// way.
void resize_pixels(std::vector<uint8_t>& v, size_t n);

}  // namespace qwenvl::vision_detail
