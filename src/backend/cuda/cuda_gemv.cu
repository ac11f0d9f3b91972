// Decode-sized products (M <= 8 rows of x): out[M,N] = x[M,K] · w[N,K]^T (+ bias). Reading w is
// the whole cost, so the kernel is built to stream it at memory bandwidth:
// - a block of kThreads threads owns kRows consecutive rows of w and splits K between its
//   threads (16 bytes per load, several loads in flight per thread), so even a 2048x2048 matrix
//   gives a thousand blocks: every SM has many loads outstanding from the first microsecond;
// - it is a chained launch (cuda_launch.cuh): before waiting for the kernel that writes x, it
//   asks L2 for the start of its rows, so weight traffic continues across kernel boundaries;
// - sums are fp32: per thread, then warp shuffles, then one shared-memory step across warps.
// The SwiGLU variant reads a stacked [gate; up] weight: a block's two rows are gate row i and up
// row i, and it writes silu(gate) * up, rounded as torch rounds each of those ops, so the MLP's
// activation never makes a trip through memory.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Rows of w per block: every block reads all of x (from L2), so x's traffic is 1/kRows of the
// weights'; 4 keeps it small while a 2048-row matrix still gives 512 blocks.
constexpr int kRows = 4;
constexpr int kPairs = kRows / 2;  // SwiGLU: gate rows, then as many up rows
// Bytes of each row requested from L2 before the wait: enough to cover a launch gap at full
// bandwidth across the blocks that are resident early, small enough not to evict the producer's
// working set.
constexpr unsigned kPrefetchBytes = 8192;

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) out[j] = to_float(v[j]);
}

template <typename T>
__device__ __forceinline__ float silu_times(float gate, float up) {
  const float g = to_float(from_float<T>(gate)), u = to_float(from_float<T>(up));
  return to_float(from_float<T>(g / (1.0f + expf(-g)))) * u;
}

// n: rows of w (plain) or outputs (SwiGLU, w has 2n rows).
template <typename T, typename O, typename B, int M, bool Swiglu>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const T* __restrict__ x,
                                                        const T* __restrict__ w,
                                                        const B* __restrict__ bias,
                                                        O* __restrict__ out, int n, int k) {
  __shared__ float partial[kWarps][M * kRows];
  // Plain: rows row0 + r. SwiGLU: outputs row0 + p for p < kPairs, from gate row row0 + p and up
  // row n + row0 + p. Rows past the end repeat the last one (computed, never written).
  const int row0 = blockIdx.x * (Swiglu ? kPairs : kRows);
  const int rows = min(Swiglu ? kPairs : kRows, n - row0);
  auto row_of = [&](int r) {
    if (!Swiglu) return row0 + min(r, rows - 1);
    return (r < kPairs ? 0 : n) + row0 + min(r % kPairs, rows - 1);
  };
  if (threadIdx.x < kRows)
    prefetch_l2(w + int64_t(row_of(threadIdx.x)) * k,
                min(kPrefetchBytes, unsigned(k) * unsigned(sizeof(T))));
  chain_start();

  const uint4* wrow[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) wrow[r] = reinterpret_cast<const uint4*>(w + int64_t(row_of(r)) * k);
  const uint4* xrow = reinterpret_cast<const uint4*>(x);
  const int chunks = k / 8;
  float acc[M][kRows];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[m][r] = 0.0f;

#pragma unroll 2
  for (int c = threadIdx.x; c < chunks; c += kThreads) {
    uint4 wraw[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) wraw[r] = __ldcs(wrow[r] + c);  // streamed once
    float wf[kRows][8];
#pragma unroll
    for (int r = 0; r < kRows; ++r) unpack8<T>(wraw[r], wf[r]);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float xf[8];
      unpack8<T>(__ldg(xrow + int64_t(m) * chunks + c), xf);
#pragma unroll
      for (int r = 0; r < kRows; ++r)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[m][r] = fmaf(xf[j], wf[r][j], acc[m][r]);
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float sum = warp_sum(acc[m][r]);
      if (lane == 0) partial[warp][m * kRows + r] = sum;
    }
  __syncthreads();
  if constexpr (Swiglu) {
    if (threadIdx.x < M * kPairs) {
      const int m = threadIdx.x / kPairs, p = threadIdx.x % kPairs;
      float gate = 0.0f, up = 0.0f;
#pragma unroll
      for (int i = 0; i < kWarps; ++i)
        gate += partial[i][m * kRows + p], up += partial[i][m * kRows + kPairs + p];
      const int row = row0 + p;
      if (p < rows) {
        if (bias) gate += to_float(bias[row]), up += to_float(bias[row + n]);
        out[int64_t(m) * n + row] = from_float<O>(silu_times<O>(gate, up));
      }
    }
    return;
  }
  if (threadIdx.x < M * kRows) {
    const int m = threadIdx.x / kRows, r = threadIdx.x % kRows;
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kWarps; ++i) sum += partial[i][threadIdx.x];
    const int row = row0 + r;
    if (r < rows) {
      if (bias) sum += to_float(bias[row]);
      out[int64_t(m) * n + row] = from_float<O>(sum);
    }
  }
}

template <typename T, typename O, typename B, bool Swiglu>
void launch(const void* x, const void* w, const void* bias, void* out, int m, int n, int k,
            cudaStream_t stream) {
  const int per_block = Swiglu ? kPairs : kRows;
  const unsigned blocks = unsigned((n + per_block - 1) / per_block);
  auto run = [&](auto kernel) {
    launch_chained(kernel, blocks, kThreads, 0, stream, static_cast<const T*>(x),
                   static_cast<const T*>(w), static_cast<const B*>(bias), static_cast<O*>(out),
                   n, k);
  };
  switch (m) {
    case 1: run(gemv_kernel<T, O, B, 1, Swiglu>); break;
    case 2: run(gemv_kernel<T, O, B, 2, Swiglu>); break;
    case 3: run(gemv_kernel<T, O, B, 3, Swiglu>); break;
    case 4: run(gemv_kernel<T, O, B, 4, Swiglu>); break;
    case 5: run(gemv_kernel<T, O, B, 5, Swiglu>); break;
    case 6: run(gemv_kernel<T, O, B, 6, Swiglu>); break;
    case 7: run(gemv_kernel<T, O, B, 7, Swiglu>); break;
    case 8: run(gemv_kernel<T, O, B, 8, Swiglu>); break;
    default: fail("internal error: gemv takes 1 to ", kGemvMaxRows, " rows, not ", m);
  }
}

template <bool Swiglu>
void dispatch(const void* x, const void* w, const void* bias, DType bias_dtype, void* out, int m,
              int n, int k, DType dtype, cudaStream_t stream) {
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    with_float(bias ? bias_dtype : DType::F32, [&](auto b) {
      using B = decltype(b);
      launch<T, T, B, Swiglu>(x, w, bias, out, m, n, k, stream);
    });
  });
}

}  // namespace

void gemv(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
          DType out_dtype, int m, int n, int k, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  if (out_dtype != DType::F32) return dispatch<false>(x, w, bias, bias_dtype, out, m, n, k, dtype, stream);
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    with_float(bias ? bias_dtype : DType::F32, [&](auto b) {
      using B = decltype(b);
      launch<T, float, B, false>(x, w, bias, out, m, n, k, stream);
    });
  });
}

void gemv_swiglu(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
                 int m, int f, int k, DType dtype, cudaStream_t stream) {
  if (f == 0) return;
  dispatch<true>(x, w, bias, bias_dtype, out, m, f, k, dtype, stream);
}

}  // namespace qwenvl::cuda
