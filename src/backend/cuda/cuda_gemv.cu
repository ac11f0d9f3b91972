// Decode-sized products (M <= 8 rows of x): out[M,N] = x[M,K] · w[N,K]^T (+ bias). Reading w is
// the whole cost, so the kernel is built to stream it at memory bandwidth: each warp owns
// kRowsPerWarp rows of w, every lane loads 16 bytes of each row per step (several independent
// loads in flight), x is read through L1 (it is small and shared by every warp), sums are fp32.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace qwenvl::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 2;

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) out[j] = to_float(v[j]);
}

template <typename T, typename O, typename B, int M>
__global__ void __launch_bounds__(kWarps * 32) gemv_kernel(const T* __restrict__ x,
                                                           const T* __restrict__ w,
                                                           const B* __restrict__ bias,
                                                           O* __restrict__ out, int n, int k) {
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int row0 = (blockIdx.x * kWarps + warp) * kRowsPerWarp;
  if (row0 >= n) return;
  const uint4* wrow[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r)
    wrow[r] = reinterpret_cast<const uint4*>(w + int64_t(min(row0 + r, n - 1)) * k);
  const uint4* xrow = reinterpret_cast<const uint4*>(x);
  int chunks = k / 8;
  float acc[M][kRowsPerWarp];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) acc[m][r] = 0.0f;

#pragma unroll 4
  for (int c = lane; c < chunks; c += 32) {
    uint4 wraw[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) wraw[r] = __ldcs(wrow[r] + c);  // streamed once
    float wf[kRowsPerWarp][8];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) unpack8<T>(wraw[r], wf[r]);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float xf[8];
      unpack8<T>(__ldg(xrow + int64_t(m) * chunks + c), xf);
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[m][r] = fmaf(xf[j], wf[r][j], acc[m][r]);
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      float sum = warp_sum(acc[m][r]);
      int row = row0 + r;
      if (lane == m * kRowsPerWarp + r && row < n) {
        if (bias) sum += to_float(bias[row]);
        out[int64_t(m) * n + row] = from_float<O>(sum);
      }
    }
}

template <typename T, typename O, typename B>
void launch(const void* x, const void* w, const void* bias, void* out, int m, int n, int k,
            cudaStream_t stream) {
  unsigned blocks = unsigned((n + kWarps * kRowsPerWarp - 1) / (kWarps * kRowsPerWarp));
  auto args = [&](auto kernel) {
    kernel<<<blocks, kWarps * 32, 0, stream>>>(static_cast<const T*>(x), static_cast<const T*>(w),
                                               static_cast<const B*>(bias), static_cast<O*>(out),
                                               n, k);
  };
  switch (m) {
    case 1: args(gemv_kernel<T, O, B, 1>); break;
    case 2: args(gemv_kernel<T, O, B, 2>); break;
    case 3: args(gemv_kernel<T, O, B, 3>); break;
    case 4: args(gemv_kernel<T, O, B, 4>); break;
    case 5: args(gemv_kernel<T, O, B, 5>); break;
    case 6: args(gemv_kernel<T, O, B, 6>); break;
    case 7: args(gemv_kernel<T, O, B, 7>); break;
    case 8: args(gemv_kernel<T, O, B, 8>); break;
    default: fail("internal error: gemv takes 1 to ", kGemvMaxRows, " rows, not ", m);
  }
}

}  // namespace

void gemv(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
          DType out_dtype, int m, int n, int k, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    auto with_out = [&](auto o) {
      using O = decltype(o);
      with_float(bias ? bias_dtype : DType::F32, [&](auto b) {
        using B = decltype(b);
        launch<T, O, B>(x, w, bias, out, m, n, k, stream);
      });
    };
    if (out_dtype == DType::F32)
      with_out(float{});
    else
      with_out(T{});
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace qwenvl::cuda
