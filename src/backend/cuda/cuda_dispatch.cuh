#pragma once
// From a runtime DType to a kernel's template parameter: with_float(dtype, [&](auto tag) {
// using T = decltype(tag); ... }) calls the lambda with a value of the matching device type; and
// from a head dimension to the attention kernels' D: with_head_dim(d, [&](auto dim) {
// launch<T, decltype(dim)::value>(...); }).
#include <type_traits>

#include "backend/cuda/cuda_types.cuh"
#include "core/dtype.h"
#include "core/error.h"

namespace qwenvl::cuda {

template <typename F>
void with_float(DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32: f(float{}); return;
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    default: fail("CUDA kernel: expected a float dtype, got ", dtype_name(dtype));
  }
}

// Activations are bf16 or f16 only.
template <typename F>
void with_half(DType dtype, F&& f) {
  switch (dtype) {
    case DType::BF16: f(bf16{}); return;
    case DType::F16: f(f16{}); return;
    default: fail("CUDA kernel: expected bf16 or f16 activations, got ", dtype_name(dtype));
  }
}

// The head dimensions the attention kernels are built for (16 and 32: the tiny test models).
inline bool attention_head_dim_supported(int head_dim) {
  return head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 80 || head_dim == 96 ||
         head_dim == 128;
}

template <typename F>
void with_head_dim(int head_dim, F&& f) {
  switch (head_dim) {
    case 16:
      f(std::integral_constant<int, 16>{});
      return;
    case 32:
      f(std::integral_constant<int, 32>{});
      return;
    case 64:
      f(std::integral_constant<int, 64>{});
      return;
    case 80:
      f(std::integral_constant<int, 80>{});
      return;
    case 96:
      f(std::integral_constant<int, 96>{});
      return;
    case 128:
      f(std::integral_constant<int, 128>{});
      return;
    default:
      fail("CUDA attention: unsupported head_dim ", head_dim);
  }
}

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

}  // namespace qwenvl::cuda
