// RMS norm and the decoder's fused residual-add + RMS norm: one block per row, statistics in
// fp32. Mirrors transformers' Qwen2RMSNorm: x * rsqrt(mean(x^2) + eps) is rounded to the
// activation dtype before the multiplication by the weight, which rounds again; the mean is the
// sum times 1/cols, as torch's mean projects it (for widths that are not a power of two, such as
// the vision tower's 1280, a division rounds differently).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 256;

// rsqrt(mean + eps) from the sum of squares, each step rounded as torch's separate ops round it
// (no fused multiply-add of the mean and eps).
__device__ __forceinline__ float inverse_rms(float sum_of_squares, int cols, float eps) {
  return rsqrtf(__fadd_rn(__fmul_rn(sum_of_squares, 1.0f / float(cols)), eps));
}

template <typename T, typename W>
__device__ __forceinline__ T normalize(float x, float inv_rms, W w) {
  float n = to_float(from_float<T>(x * inv_rms));
  return from_float<T>(to_float(w) * n);
}

// `vector`: cols % 8 == 0 and the row pointers are 16-byte aligned.
template <typename T, typename W>
__global__ void rms_norm_kernel(const T* x, const W* w, T* out, int cols, float eps, bool vector) {
  __shared__ float partial[32];
  chain_start();
  const T* row = x + blockIdx.x * int64_t(cols);
  T* out_row = out + blockIdx.x * int64_t(cols);
  float sum = 0.0f;
  if (vector) {
    for (int c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
      Vec<T> v = load16(row + c);
#pragma unroll
      for (int j = 0; j < 8; ++j) sum += to_float(v.v[j]) * to_float(v.v[j]);
    }
  } else {
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += to_float(row[c]) * to_float(row[c]);
  }
  float inv_rms = inverse_rms(block_sum(sum, partial), cols, eps);
  if (vector) {
    for (int c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
      Vec<T> v = load16(row + c), o;
#pragma unroll
      for (int j = 0; j < 8; ++j) o.v[j] = normalize<T>(to_float(v.v[j]), inv_rms, w[c + j]);
      store16(out_row + c, o);
    }
  } else {
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
      out_row[c] = normalize<T>(to_float(row[c]), inv_rms, w[c]);
  }
}

// Rows of up to kHeld · 8 · kThreads elements (8192: every hidden size of Qwen2.5-VL) keep
// their values in registers between the two passes of add_rms_norm.
constexpr int kHeld = 4;

// residual = round(residual + delta) (torch adds in the activation dtype), then its RMS norm.
// `held` (cols % 8 == 0, 16-byte aligned rows, cols <= kHeld · 8 · blockDim.x: every Qwen2.5-VL
// width): each thread keeps its eight-element groups in registers between the two passes and
// re-reads nothing, and the norm weights are read before waiting for the producer (no kernel
// writes them), so in a decode step the kernel waits on one round trip to memory, not three
// (3B decode 372 -> 377 tok/s on an H100, A/B in one call). Otherwise one element at a time; each
// thread re-reads only the residual elements it wrote itself, so no barrier is needed between
// the two passes.
template <typename T, typename D, typename W>
__global__ void add_rms_norm_kernel(T* residual, const D* delta, const W* w, T* out, int cols,
                                    float eps, bool held) {
  __shared__ float partial[32];
  T* row = residual + blockIdx.x * int64_t(cols);
  const D* delta_row = delta + blockIdx.x * int64_t(cols);
  T* out_row = out + blockIdx.x * int64_t(cols);
  if (held) {
    float wv[kHeld][8], rv[kHeld][8];
#pragma unroll
    for (int i = 0; i < kHeld; ++i) {
      const int c = (threadIdx.x + i * blockDim.x) * 8;
      if (c < cols)
#pragma unroll
        for (int j = 0; j < 8; ++j) wv[i][j] = to_float(w[c + j]);
    }
    chain_start();
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kHeld; ++i) {
      const int c = (threadIdx.x + i * blockDim.x) * 8;
      if (c >= cols) continue;
      Vec<T> r = load16(row + c);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        r.v[j] = from_float<T>(to_float(r.v[j]) + to_float(delta_row[c + j]));
        rv[i][j] = to_float(r.v[j]);
        sum += rv[i][j] * rv[i][j];
      }
      store16(row + c, r);
    }
    const float inv_rms = inverse_rms(block_sum(sum, partial), cols, eps);
#pragma unroll
    for (int i = 0; i < kHeld; ++i) {
      const int c = (threadIdx.x + i * blockDim.x) * 8;
      if (c >= cols) continue;
      Vec<T> o;
#pragma unroll
      for (int j = 0; j < 8; ++j) o.v[j] = normalize<T>(rv[i][j], inv_rms, wv[i][j]);
      store16(out_row + c, o);
    }
    return;
  }
  chain_start();
  float sum = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) {
    T r = from_float<T>(to_float(row[c]) + to_float(delta_row[c]));
    row[c] = r;
    sum += to_float(r) * to_float(r);
  }
  float inv_rms = inverse_rms(block_sum(sum, partial), cols, eps);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    out_row[c] = normalize<T>(to_float(row[c]), inv_rms, w[c]);
}

bool vector_ok(int cols, std::initializer_list<const void*> pointers) {
  if (cols % 8) return false;
  for (const void* p : pointers)
    if (!aligned16(p)) return false;
  return true;
}

}  // namespace

void rms_norm(const void* x, const void* w, DType w_dtype, void* out, int64_t rows, int cols,
              float eps, DType dtype, cudaStream_t stream) {
  if (rows == 0) return;
  bool vector = vector_ok(cols, {x, out});
  with_half(dtype, [&](auto t) {
    with_float(w_dtype, [&](auto wt) {
      using T = decltype(t);
      using W = decltype(wt);
      launch_chained(rms_norm_kernel<T, W>, unsigned(rows), kThreads, 0, stream,
                     static_cast<const T*>(x), static_cast<const W*>(w), static_cast<T*>(out),
                     cols, eps, vector);
    });
  });
}

void add_rms_norm(void* residual, const void* delta, DType delta_dtype, const void* w,
                  DType w_dtype, void* out, int64_t rows, int cols, float eps, DType dtype,
                  cudaStream_t stream) {
  if (rows == 0) return;
  const bool held = vector_ok(cols, {residual, out}) && cols <= kHeld * 8 * kThreads;
  with_half(dtype, [&](auto t) {
    with_float(w_dtype, [&](auto wt) {
      using T = decltype(t);
      using W = decltype(wt);
      auto launch = [&](auto dt) {
        using D = decltype(dt);
        launch_chained(add_rms_norm_kernel<T, D, W>, unsigned(rows), kThreads, 0, stream,
                       static_cast<T*>(residual), static_cast<const D*>(delta),
                       static_cast<const W*>(w), static_cast<T*>(out), cols, eps, held);
      };
      if (delta_dtype == DType::F32)
        launch(float{});
      else
        launch(T{});
    });
  });
}

}  // namespace qwenvl::cuda
