// Elementwise ops, one pass each, 16-byte accesses where the pointers allow. Rounding mirrors
// torch's bf16/f16 ops: each torch op computes in fp32 and rounds its own output once.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 256;

// Thread t handles elements [8t, 8t + 8); `vector`: every pointer is 16-byte aligned, so full
// chunks use 16-byte accesses.
template <typename T, typename B>
__global__ void add_kernel(T* a, const B* b, int64_t n, bool vector) {
  int64_t base = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * 8;
  if (base >= n) return;
  if constexpr (sizeof(B) == 2) {
    if (vector && base + 8 <= n) {
      Vec<T> va = load16(a + base);
      Vec<T> vb = load16(b + base);
#pragma unroll
      for (int j = 0; j < 8; ++j) va.v[j] = from_float<T>(to_float(va.v[j]) + to_float(vb.v[j]));
      store16(a + base, va);
      return;
    }
  }
  for (int64_t i = base; i < min(n, base + 8); ++i)
    a[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

// Thread t handles output elements [8t, 8t + 8) of `rows` rows of f; gate_up rows are 2f wide.
// `vector`: f % 8 == 0 and both pointers 16-byte aligned.
template <typename T>
__global__ void swiglu_kernel(const T* gate_up, T* out, int64_t rows, int64_t f, bool vector) {
  chain_start();
  const int64_t n = rows * f;
  const int64_t base = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * 8;
  if (base >= n) return;
  if (vector) {
    const int64_t r = base / f, j = base % f;
    const T* g = gate_up + r * 2 * f + j;
    Vec<T> gv = load16(g), uv = load16(g + f), o;
#pragma unroll
    for (int i = 0; i < 8; ++i)
      o.v[i] = from_float<T>(silu_times<T>(to_float(gv.v[i]), to_float(uv.v[i])));
    store16(out + base, o);
    return;
  }
  for (int64_t i = base; i < min(n, base + 8); ++i) {
    const int64_t r = i / f, j = i % f;
    const T* g = gate_up + r * 2 * f + j;
    out[i] = from_float<T>(silu_times<T>(to_float(g[0]), to_float(g[f])));
  }
}

__device__ __forceinline__ float gelu_erf(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

template <typename T>
__global__ void gelu_kernel(T* x, int64_t n, bool vector) {
  int64_t base = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * 8;
  if (base >= n) return;
  if (vector && base + 8 <= n) {
    Vec<T> v = load16(x + base);
#pragma unroll
    for (int j = 0; j < 8; ++j) v.v[j] = from_float<T>(gelu_erf(to_float(v.v[j])));
    store16(x + base, v);
    return;
  }
  for (int64_t i = base; i < min(n, base + 8); ++i) x[i] = from_float<T>(gelu_erf(to_float(x[i])));
}

template <typename O, typename B>
__global__ void add_bias_kernel(O* out, const B* bias, int64_t rows, int64_t cols) {
  int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_float<O>(to_float(out[i]) + to_float(bias[i % cols]));
}

unsigned chunk_blocks(int64_t n) { return blocks_for((n + 7) / 8, kThreads); }

}  // namespace

void add(void* a, const void* b, DType b_dtype, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  bool vector = aligned16(a) && aligned16(b);
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    if (b_dtype == DType::F32)
      add_kernel<T, float><<<chunk_blocks(n), kThreads, 0, stream>>>(
          static_cast<T*>(a), static_cast<const float*>(b), n, vector);
    else
      add_kernel<T, T><<<chunk_blocks(n), kThreads, 0, stream>>>(
          static_cast<T*>(a), static_cast<const T*>(b), n, vector);
  });
  CUDA_CHECK_LAUNCH();
}

void swiglu(const void* gate_up, void* out, int64_t rows, int64_t f, DType dtype,
            cudaStream_t stream) {
  if (rows * f == 0) return;
  const bool vector = f % 8 == 0 && aligned16(gate_up) && aligned16(out);
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    launch_chained(swiglu_kernel<T>, chunk_blocks(rows * f), kThreads, 0, stream,
                   static_cast<const T*>(gate_up), static_cast<T*>(out), rows, f, vector);
  });
}

void gelu(void* x, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    gelu_kernel<T><<<chunk_blocks(n), kThreads, 0, stream>>>(static_cast<T*>(x), n, aligned16(x));
  });
  CUDA_CHECK_LAUNCH();
}

void add_bias(void* out, DType out_dtype, const void* bias, DType bias_dtype, int64_t rows,
              int64_t cols, cudaStream_t stream) {
  if (rows * cols == 0) return;
  unsigned blocks = unsigned(std::min<int64_t>(blocks_for(rows * cols, kThreads), 65535));
  with_float(out_dtype, [&](auto o) {
    with_float(bias_dtype, [&](auto b) {
      using O = decltype(o);
      using B = decltype(b);
      add_bias_kernel<O, B><<<blocks, kThreads, 0, stream>>>(
          static_cast<O*>(out), static_cast<const B*>(bias), rows, cols);
    });
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace qwenvl::cuda
