// RMS norm and the decoder's fused residual-add + RMS norm: one block per row, statistics in
// fp32. Mirrors transformers' Qwen2RMSNorm: x * rsqrt(mean(x^2) + eps) is rounded to the
// activation dtype before the multiplication by the weight, which rounds again; the mean is the
// sum times 1/cols, as torch's mean projects it (for widths that are not a power of two, such as
// the vision tower's 1280, a division rounds differently).
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 256;

// transformers' Qwen2RMSNorm sums the squares with ATen's reduction kernel (x.pow(2).mean(-1) on
// a contiguous fp32 tensor), whose order depends on the row count. With more than one row we sum
// in that order, so that each row's statistic, and the norm's output, are torch's to the bit;
// a single row (a decode step) keeps the one-pass order below, which the next layer's GEMV waits
// on. ATen's order: each of `lanes` threads keeps four interleaved sums over the row's 4-element
// groups lane, lane + lanes, ... and adds them up in order; the lanes' values then fold in
// halves in shared memory down to 32, and the last 32 in a warp folding 16, 8, 4, 2, 1 apart.
// lanes = min(p2(cols / 4), 512 / min(p2(rows), 16)) with p2 the largest power of two not above
// its argument (ATen's ReduceConfig::set_block_dimension with 4-element vector loads, for rows of
// more than 128 elements and a multiple of 4; 0 otherwise: our own order).
constexpr int kMaxTorchOrderCols = 8192;  // the squares' shared memory: 32 KB

int torch_reduce_lanes(int64_t rows, int cols) {
  if (rows < 2 || cols <= 128 || cols % 4 || cols > kMaxTorchOrderCols) return 0;
  auto floor_pow2 = [](int64_t v) {
    int64_t p = 1;
    while (p * 2 <= v) p *= 2;
    return int(p);
  };
  const int groups = floor_pow2(std::min<int64_t>(cols / 4, 512));
  const int lanes_per_row = std::min(groups, 32);
  const int rows_per_block =
      std::min(floor_pow2(std::min<int64_t>(rows, 512)), 512 / lanes_per_row);
  return std::min(groups, 512 / rows_per_block);
}

constexpr int kMaxTorchLanes = 512;

// The row's sum of squares in ATen's order for `lanes` (above), from the squares the block's
// threads have put in squares[0, cols) (dynamic shared memory); every thread of the block calls
// it and gets the sum. `partial` holds kMaxTorchLanes floats.
__device__ float torch_order_sum(const float* squares, int cols, int lanes, float* partial) {
  __syncthreads();  // every square is in place
  for (int lane = threadIdx.x; lane < lanes; lane += blockDim.x) {
    float sums[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 8
    for (int c = lane * 4; c < cols; c += lanes * 4) {
      const float4 v = *reinterpret_cast<const float4*>(squares + c);
      sums[0] = __fadd_rn(sums[0], v.x);
      sums[1] = __fadd_rn(sums[1], v.y);
      sums[2] = __fadd_rn(sums[2], v.z);
      sums[3] = __fadd_rn(sums[3], v.w);
    }
    partial[lane] = __fadd_rn(__fadd_rn(__fadd_rn(sums[0], sums[1]), sums[2]), sums[3]);
  }
  for (int half = lanes / 2; half >= 32; half /= 2) {
    __syncthreads();
    for (int lane = threadIdx.x; lane < half; lane += blockDim.x)
      partial[lane] = __fadd_rn(partial[lane], partial[lane + half]);
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = partial[threadIdx.x];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_down_sync(0xffffffffu, v, o));
    if (threadIdx.x == 0) partial[0] = v;
  }
  __syncthreads();
  return partial[0];
}

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
// torch_lanes > 0: the squares go to dynamic shared memory (cols floats) and are summed in
// ATen's order (torch_order_sum).
template <typename T, typename W>
__global__ void rms_norm_kernel(const T* x, const W* w, T* out, int cols, float eps, bool vector,
                                int torch_lanes) {
  __shared__ float partial[kMaxTorchLanes];
  extern __shared__ float squares[];
  chain_start();
  const T* row = x + blockIdx.x * int64_t(cols);
  T* out_row = out + blockIdx.x * int64_t(cols);
  float sum = 0.0f;
  if (vector) {
    for (int c = threadIdx.x * 8; c < cols; c += blockDim.x * 8) {
      Vec<T> v = load16(row + c);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float square = __fmul_rn(to_float(v.v[j]), to_float(v.v[j]));
        if (torch_lanes)
          squares[c + j] = square;
        else
          sum += square;
      }
    }
  } else {
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      const float square = __fmul_rn(to_float(row[c]), to_float(row[c]));
      if (torch_lanes)
        squares[c] = square;
      else
        sum += square;
    }
  }
  float inv_rms = inverse_rms(
      torch_lanes ? torch_order_sum(squares, cols, torch_lanes, partial) : block_sum(sum, partial),
      cols, eps);
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
// writes them), so in a decode step the kernel waits on one round trip to memory, not three.
// Otherwise one element at a time; each
// thread re-reads only the residual elements it wrote itself, so no barrier is needed between
// the two passes.
template <typename T, typename D, typename W>
__global__ void add_rms_norm_kernel(T* residual, const D* delta, const W* w, T* out, int cols,
                                    float eps, bool held, int torch_lanes) {
  __shared__ float partial[kMaxTorchLanes];
  extern __shared__ float squares[];
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
        if (torch_lanes)
          squares[c + j] = __fmul_rn(rv[i][j], rv[i][j]);
        else
          sum += rv[i][j] * rv[i][j];
      }
      store16(row + c, r);
    }
    const float inv_rms =
        inverse_rms(torch_lanes ? torch_order_sum(squares, cols, torch_lanes, partial)
                                : block_sum(sum, partial),
                    cols, eps);
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
    if (torch_lanes)
      squares[c] = __fmul_rn(to_float(r), to_float(r));
    else
      sum += to_float(r) * to_float(r);
  }
  float inv_rms = inverse_rms(
      torch_lanes ? torch_order_sum(squares, cols, torch_lanes, partial) : block_sum(sum, partial),
      cols, eps);
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
              float eps, DType dtype, bool torch_order, cudaStream_t stream) {
  if (rows == 0) return;
  bool vector = vector_ok(cols, {x, out});
  with_half(dtype, [&](auto t) {
    with_float(w_dtype, [&](auto wt) {
      using T = decltype(t);
      using W = decltype(wt);
      const int lanes = torch_order ? torch_reduce_lanes(rows, cols) : 0;
      launch_chained(rms_norm_kernel<T, W>, unsigned(rows), kThreads, lanes ? cols * 4 : 0, stream,
                     static_cast<const T*>(x), static_cast<const W*>(w), static_cast<T*>(out), cols,
                     eps, vector, lanes);
    });
  });
}

void add_rms_norm(void* residual, const void* delta, DType delta_dtype, const void* w,
                  DType w_dtype, void* out, int64_t rows, int cols, float eps, DType dtype,
                  bool torch_order, cudaStream_t stream) {
  if (rows == 0) return;
  const bool held = vector_ok(cols, {residual, out}) && cols <= kHeld * 8 * kThreads;
  with_half(dtype, [&](auto t) {
    with_float(w_dtype, [&](auto wt) {
      using T = decltype(t);
      using W = decltype(wt);
      auto launch = [&](auto dt) {
        using D = decltype(dt);
        const int lanes = torch_order ? torch_reduce_lanes(rows, cols) : 0;
        launch_chained(add_rms_norm_kernel<T, D, W>, unsigned(rows), kThreads, lanes ? cols * 4 : 0,
                       stream, static_cast<T*>(residual), static_cast<const D*>(delta),
                       static_cast<const W*>(w), static_cast<T*>(out), cols, eps, held, lanes);
      };
      if (delta_dtype == DType::F32)
        launch(float{});
      else
        launch(T{});
    });
  });
}

}  // namespace qwenvl::cuda
