#pragma once
// From a runtime DType to a kernel's template parameter: with_float(dtype, [&](auto tag) {
// using T = decltype(tag); ... }) calls the lambda with a value of the matching device type.
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

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

}  // namespace qwenvl::cuda
