#pragma once
// From a runtime DType to a kernel's template parameter: with_float(dtype, [&](auto tag) {
// using T = decltype(tag); ... }) calls the lambda with a value of the matching device type; and
// from a head dimension to the attention kernels' D: with_head_dim(d, [&](auto dim) {
// launch<T, decltype(dim)::value>(...); }).
#include <type_traits>
#include <utility>

#include "backend/cuda/cuda_types.cuh"
#include "core/dtype.h"
#include "core/error.h"

namespace qwenvl::cuda {

template <typename F>
void with_float(DType dtype, F&& f) {
  switch (dtype) {
    case DType::F32:
      f(float{});
      return;
    case DType::BF16:
      f(bf16{});
      return;
    case DType::F16:
      f(f16{});
      return;
    default:
      fail_internal("CUDA kernel: expected a float dtype, got ", dtype_name(dtype));
  }
}

// Activations are bf16 or f16 only.
template <typename F>
void with_half(DType dtype, F&& f) {
  switch (dtype) {
    case DType::BF16:
      f(bf16{});
      return;
    case DType::F16:
      f(f16{});
      return;
    default:
      fail_internal("CUDA kernel: expected bf16 or f16 activations, got ", dtype_name(dtype));
  }
}

// The head dimensions the attention kernels are built for (16 and 32: the tiny test models).
using AttentionHeadDims = std::integer_sequence<int, 16, 32, 64, 80, 96, 128>;

template <int... D>
bool head_dim_in(int head_dim, std::integer_sequence<int, D...>) {
  return ((head_dim == D) || ...);
}

inline bool attention_head_dim_supported(int head_dim) {
  return head_dim_in(head_dim, AttentionHeadDims{});
}

// f(std::integral_constant<int, head_dim>{}) if head_dim is one of D; whether it was.
template <typename F, int... D>
bool call_with_head_dim(int head_dim, F& f, std::integer_sequence<int, D...>) {
  return ((head_dim == D ? (f(std::integral_constant<int, D>{}), true) : false) || ...);
}

// f(std::integral_constant<int, head_dim>{}) for a head_dim of AttentionHeadDims.
template <typename F>
void with_head_dim(int head_dim, F&& f) {
  if (!call_with_head_dim(head_dim, f, AttentionHeadDims{}))
    fail_internal("CUDA attention: unsupported head_dim ", head_dim);
}

// The attention kernels' dispatch: f(T{}, std::integral_constant<int, D>{}) for the activation
// dtype (with_half) and the head dimension (with_head_dim).
template <typename F>
void with_half_and_head_dim(DType dtype, int head_dim, F&& f) {
  with_half(dtype, [&](auto tag) { with_head_dim(head_dim, [&](auto dim) { f(tag, dim); }); });
}

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

}  // namespace qwenvl::cuda
