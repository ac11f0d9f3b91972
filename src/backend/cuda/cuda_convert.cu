// Element conversions between float dtypes (upload of bf16 checkpoints as f16, f32 host data,
// f32 results read back) and the NaN fill tests poison outputs with.
#include <algorithm>
#include <cstring>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace qwenvl::cuda {

namespace {

template <typename From, typename To>
__global__ void convert_kernel(const From* src, To* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_float<To>(to_float(src[i]));
}

// f32 -> f16 without saturation: a conversion of data keeps inf as inf.
template <>
__global__ void convert_kernel<float, f16>(const float* src, f16* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2half_rn(src[i]);
}

__global__ void fill_u16_kernel(uint16_t* dst, uint16_t bits, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = bits;
}

__global__ void fill_u32_kernel(uint32_t* dst, uint32_t bits, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = bits;
}

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>((n + 255) / 256, 65535)); }

}  // namespace

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
             cudaStream_t stream) {
  if (n == 0) return;
  if (src_dtype == dst_dtype) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(n) * dtype_size(src_dtype),
                               cudaMemcpyDeviceToDevice, stream));
    return;
  }
  with_float(src_dtype, [&](auto from) {
    with_float(dst_dtype, [&](auto to) {
      using From = decltype(from);
      using To = decltype(to);
      convert_kernel<From, To><<<grid_for(n), 256, 0, stream>>>(static_cast<const From*>(src),
                                                                static_cast<To*>(dst), n);
    });
  });
  CUDA_CHECK_LAUNCH();
}

void fill_nan(void* dst, DType dtype, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  switch (dtype) {
    case DType::BF16:
      fill_u16_kernel<<<grid_for(n), 256, 0, stream>>>(static_cast<uint16_t*>(dst), 0x7fc0, n);
      break;
    case DType::F16:
      fill_u16_kernel<<<grid_for(n), 256, 0, stream>>>(static_cast<uint16_t*>(dst), 0x7e00, n);
      break;
    case DType::F32:
    case DType::I32:  // i32: an id far outside any vocabulary
      fill_u32_kernel<<<grid_for(n), 256, 0, stream>>>(static_cast<uint32_t*>(dst), 0x7fc00000u, n);
      break;
    default:
      fail_internal("fill_nan: unsupported dtype ", dtype_name(dtype));
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace qwenvl::cuda
