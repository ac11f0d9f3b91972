// Products with FP8 E4M3 weights (backend/packed_fp8.h: per output row, k codes, then its fp32
// scale in a 16-byte tail).
// - gemv_fp8: decode-sized products (M <= kGemvMaxRows), reading the weight rows once at
//   bandwidth. A block owns R rows and its threads stride over 16-byte chunks (16 codes),
//   loading the next chunk while computing one; two codes at a time become an fp16 pair exactly
//   (cvt.rn.f16x2.e4m3x2: every E4M3 value is an fp16), the dot products with x are fp32, and
//   the row's scale multiplies its sum once, with the bias, at the end.
//   Chained launch: the first chunk is loaded before waiting for the kernel that writes x.
// - dequantize_fp8: rows [first, first + rows) of the weight as code · scale in the compute
//   dtype, for prefill, whose product then runs on tensor cores (cuBLASLt) over a dequantized slab.
#include <cuda_fp8.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr unsigned kPrefetchBytes = 4096;
constexpr int kTailBytes = 16;  // Fp8Layout::kTailBytes

// The 8 values of one 16-byte load of x as floats.
template <typename T>
__device__ __forceinline__ void load_x8(const T* x, float (&out)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(x));
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) out[j] = to_float(v[j]);
}

// The two codes of the low (which = 0) or high half of `word` as floats, exactly.
__device__ __forceinline__ float2 decode2(uint32_t word, int which) {
  const __half2_raw raw = __nv_cvt_fp8x2_to_halfraw2(
      static_cast<__nv_fp8x2_storage_t>(word >> (16 * which) & 0xFFFFu), __NV_E4M3);
  return __half22float2(__half2(raw));
}

// A block owns R rows; each thread holds the next chunk's loads in flight while it computes the
// current one (R 16-byte loads outstanding per thread, besides x's).
template <typename T, typename O, typename B, int M, int R, int kThreads>
__global__ void __launch_bounds__(kThreads)
    gemv_fp8_kernel(const T* __restrict__ x, const uint8_t* __restrict__ w,
                    const B* __restrict__ bias, O* __restrict__ out, int n, int k) {
  constexpr int kWarps = kThreads / 32;
  __shared__ float partial[kWarps][M * R];
  const int64_t row_bytes = int64_t(k) + kTailBytes;
  const int first_row = R * blockIdx.x;
  if (threadIdx.x < R)
    prefetch_l2(w + int64_t(min(first_row + int(threadIdx.x), n - 1)) * row_bytes,
                min(kPrefetchBytes, unsigned(k)));

  const uint4* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r)
    rows[r] = reinterpret_cast<const uint4*>(w + int64_t(min(first_row + r, n - 1)) * row_bytes);
  const int chunks = k / 16;
  float acc[M][R];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[m][r] = 0.0f;

  // The weights are never written by a kernel: the first chunk is loaded before the wait.
  uint4 next[R];
  int c = threadIdx.x;
  if (c < chunks)
#pragma unroll
    for (int r = 0; r < R; ++r) next[r] = __ldcs(rows[r] + c);  // streamed once
  chain_start();
  for (; c < chunks; c += kThreads) {
    uint4 cur[R];
#pragma unroll
    for (int r = 0; r < R; ++r) cur[r] = next[r];
    if (c + kThreads < chunks)
#pragma unroll
      for (int r = 0; r < R; ++r) next[r] = __ldcs(rows[r] + c + kThreads);
#pragma unroll
    for (int i = 0; i < 2; ++i) {  // 8 columns (two 32-bit words of each row) at a time
      float xs[M][8];
#pragma unroll
      for (int m = 0; m < M; ++m) load_x8(x + int64_t(m) * k + 16 * c + 8 * i, xs[m]);
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const uint32_t word = (&cur[r].x)[2 * i + j];
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const float2 v = decode2(word, h);
            const int e = 4 * j + 2 * h;
#pragma unroll
            for (int m = 0; m < M; ++m) {
              acc[m][r] = fmaf(xs[m][e], v.x, acc[m][r]);
              acc[m][r] = fmaf(xs[m][e + 1], v.y, acc[m][r]);
            }
          }
        }
      }
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float sum = warp_sum(acc[m][r]);
      if (lane == 0) partial[warp][m * R + r] = sum;
    }
  __syncthreads();
  if (threadIdx.x >= M * R) return;
  const int m = threadIdx.x / R, r = threadIdx.x % R, row = first_row + r;
  if (row >= n) return;
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kWarps; ++i) sum += partial[i][m * R + r];
  sum *= __ldg(reinterpret_cast<const float*>(w + int64_t(row) * row_bytes + k));
  if (bias) sum += to_float(bias[row]);
  out[int64_t(m) * n + row] = from_float<O>(sum);
}

template <typename T, typename O, typename B, int M>
void launch_rows(const void* x, const void* w, const void* bias, void* out, int n, int k,
                 cudaStream_t stream) {
  // As the int4 GEMV chooses (cuda_int4.cu): 128 threads and four rows for one token with rows
  // of up to 4096 columns (256 chunks: two per thread), two rows for more tokens; 256 threads and
  // two rows (one for K >= 8192: the down projections) for longer rows.
  auto run = [&](auto kernel, int rows, int threads) {
    launch_chained(kernel, unsigned((n + rows - 1) / rows), threads, 0, stream,
                   static_cast<const T*>(x), static_cast<const uint8_t*>(w),
                   static_cast<const B*>(bias), static_cast<O*>(out), n, k);
  };
  if (k <= 4096) {
    if constexpr (M == 1) return run(gemv_fp8_kernel<T, O, B, M, 4, 128>, 4, 128);
    return run(gemv_fp8_kernel<T, O, B, M, 2, 128>, 2, 128);
  }
  if (k >= 8192) return run(gemv_fp8_kernel<T, O, B, M, 1, 256>, 1, 256);
  run(gemv_fp8_kernel<T, O, B, M, 2, 256>, 2, 256);
}

template <typename T, typename O, typename B>
void launch(const void* x, const void* w, const void* bias, void* out, int m, int n, int k,
            cudaStream_t stream) {
  switch (m) {
    case 1:
      return launch_rows<T, O, B, 1>(x, w, bias, out, n, k, stream);
    case 2:
      return launch_rows<T, O, B, 2>(x, w, bias, out, n, k, stream);
    case 3:
      return launch_rows<T, O, B, 3>(x, w, bias, out, n, k, stream);
    case 4:
      return launch_rows<T, O, B, 4>(x, w, bias, out, n, k, stream);
    case 5:
      return launch_rows<T, O, B, 5>(x, w, bias, out, n, k, stream);
    case 6:
      return launch_rows<T, O, B, 6>(x, w, bias, out, n, k, stream);
    case 7:
      return launch_rows<T, O, B, 7>(x, w, bias, out, n, k, stream);
    case 8:
      return launch_rows<T, O, B, 8>(x, w, bias, out, n, k, stream);
    default:
      fail_internal("gemv_fp8 takes 1 to ", kGemvMaxRows, " rows, not ", m);
  }
}

// One thread per 16-byte chunk of codes: sixteen outputs, two 16-byte stores.
template <typename T>
__global__ void dequantize_fp8_kernel(const uint8_t* __restrict__ w, T* __restrict__ out,
                                      int64_t first, int64_t rows, int k) {
  const int64_t row_bytes = int64_t(k) + kTailBytes;
  const int chunks = k / 16;
  const int64_t total = rows * chunks;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / chunks;
    const int c = int(i % chunks);
    const uint8_t* row = w + (first + r) * row_bytes;
    const float scale = __ldg(reinterpret_cast<const float*>(row + k));
    const uint4 codes = __ldcs(reinterpret_cast<const uint4*>(row) + c);
    Vec<T> parts[2];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const uint32_t word = (&codes.x)[j];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float2 v = decode2(word, h);
        const int e = 4 * j + 2 * h;
        parts[e / 8].v[e % 8] = from_float<T>(v.x * scale);
        parts[e / 8].v[e % 8 + 1] = from_float<T>(v.y * scale);
      }
    }
    T* o = out + r * k + 16 * c;
    store16(o, parts[0]);
    store16(o + 8, parts[1]);
  }
}

}  // namespace

bool gemv_fp8_serves(int m, int k, const void* x, const void* w) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return m >= 1 && m <= kGemvMaxRows && k > 0 && k % 16 == 0 && aligned(x) && aligned(w);
}

void gemv_fp8(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
              DType out_dtype, int m, int n, int k, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    with_float(bias ? bias_dtype : DType::F32, [&](auto b) {
      using B = decltype(b);
      if (out_dtype == DType::F32)
        launch<T, float, B>(x, w, bias, out, m, n, k, stream);
      else
        launch<T, T, B>(x, w, bias, out, m, n, k, stream);
    });
  });
}

void dequantize_fp8(const void* w, int64_t first, int64_t rows, int k, void* out, DType dtype,
                    cudaStream_t stream) {
  const int64_t total = rows * (k / 16);
  if (total == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>((total + 255) / 256, 65535));
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    dequantize_fp8_kernel<T><<<blocks, 256, 0, stream>>>(static_cast<const uint8_t*>(w),
                                                         static_cast<T*>(out), first, rows, k);
  });
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace qwenvl::cuda
