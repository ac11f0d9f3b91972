// Products with packed 4-bit weights (backend/packed_int4.h: per output row, k/2 bytes of
// values, column 2i in byte i's low nibble, then a (scale, zero) fp16 pair per group).
// - gemv_int4: decode-sized products (M <= kGemvMaxRows), reading the packed rows once at
//   bandwidth. A block owns R rows and its threads stride over 16-byte chunks (32 values, one
//   group's part: group % 32 == 0), loading the next chunk while computing one; each value
//   becomes q - z exactly in fp32 (the float 0x4B000000 | q is 2^23 + q, minus 2^23 + z), the
//   chunk's dot product with x is fp32, and the group's scale multiplies the chunk's sum once.
//   Chained launch: the first chunk is loaded before waiting for the kernel that writes x.
// - dequantize_int4: rows [first, first + rows) of the weight as (q - z) * s in the compute dtype,
//   for prefill, whose product then runs on tensor cores (cuBLASLt) over a dequantized slab.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr unsigned kPrefetchBytes = 4096;

// 2^23 + v as a float, for v in [0, 2^23): exact, and one OR instead of a conversion.
__device__ __forceinline__ float magic(uint32_t v) { return __uint_as_float(0x4B000000u | v); }

// The 8 values of one 16-byte load of x as floats.
template <typename T>
__device__ __forceinline__ void load_x8(const T* x, float (&out)[8]) {
  const uint4 raw = __ldg(reinterpret_cast<const uint4*>(x));
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) out[j] = to_float(v[j]);
}

// One chunk of R rows: 16 bytes of packed values (32 columns of one group) and the group's
// (scale, zero) per row.
template <int R>
struct Chunk {
  uint4 values[R];
  __half2 scale_zero[R];
};

// Rows of a multiple of 16 bytes load a chunk at once; rows of 8 (an odd number of groups of 128
// columns over 4: the 3B's down projection, k = 11008) in two halves.
template <int R, bool kRows16>
__device__ __forceinline__ void load_chunk(const uint8_t* const (&rows)[R], int k, int c,
                                           int chunks_per_group, Chunk<R>& out) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    if constexpr (kRows16) {
      out.values[r] = __ldcs(reinterpret_cast<const uint4*>(rows[r]) + c);  // streamed once
    } else {
      const uint2 low = __ldcs(reinterpret_cast<const uint2*>(rows[r]) + 2 * c);
      const uint2 high = __ldcs(reinterpret_cast<const uint2*>(rows[r]) + 2 * c + 1);
      out.values[r] = make_uint4(low.x, low.y, high.x, high.y);
    }
    out.scale_zero[r] =
        __ldg(reinterpret_cast<const __half2*>(rows[r] + k / 2) + c / chunks_per_group);
  }
}

// A block owns R rows; each thread holds the next chunk's loads in flight while it computes the
// current one (2R 16-byte loads outstanding per thread).
template <typename T, typename O, typename B, int M, int R, int kThreads, bool kRows16>
__global__ void __launch_bounds__(kThreads)
    gemv_int4_kernel(const T* __restrict__ x, const uint8_t* __restrict__ w,
                     const B* __restrict__ bias, O* __restrict__ out, int n, int k, int group) {
  constexpr int kWarps = kThreads / 32;
  __shared__ float partial[kWarps][M * R];
  const int64_t row_bytes = k / 2 + 4 * int64_t(k / group);
  const int first_row = R * blockIdx.x;
  if (threadIdx.x < R) {  // the bulk prefetch takes 16-byte aligned ranges
    const uintptr_t row = reinterpret_cast<uintptr_t>(
        w + int64_t(min(first_row + int(threadIdx.x), n - 1)) * row_bytes);
    prefetch_l2(reinterpret_cast<const void*>(row & ~uintptr_t(15)),
                min(kPrefetchBytes, unsigned(k / 2)) & ~15u);
  }

  const uint8_t* rows[R];
#pragma unroll
  for (int r = 0; r < R; ++r) rows[r] = w + int64_t(min(first_row + r, n - 1)) * row_bytes;
  const int chunks = k / 32, chunks_per_group = group / 32;
  float acc[M][R];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[m][r] = 0.0f;

  // The weights are never written by a kernel: the first chunk is loaded before the wait.
  Chunk<R> next;
  int c = threadIdx.x;
  if (c < chunks) load_chunk<R, kRows16>(rows, k, c, chunks_per_group, next);
  chain_start();
  for (; c < chunks; c += kThreads) {
    const Chunk<R> cur = next;
    if (c + kThreads < chunks)
      load_chunk<R, kRows16>(rows, k, c + kThreads, chunks_per_group, next);
    float scale[R], offset[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      scale[r] = __low2float(cur.scale_zero[r]);
      offset[r] = magic(0) + __high2float(cur.scale_zero[r]);  // 2^23 + z, exact
    }
    float dot[M][R];
#pragma unroll
    for (int m = 0; m < M; ++m)
#pragma unroll
      for (int r = 0; r < R; ++r) dot[m][r] = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // one 32-bit word (8 columns) of each row at a time
      float xs[M][8];
#pragma unroll
      for (int m = 0; m < M; ++m) load_x8(x + int64_t(m) * k + 32 * c + 8 * i, xs[m]);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint32_t word = (&cur.values[r].x)[i];
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const float v = magic(word >> (4 * e) & 15u) - offset[r];  // q - z, exact
#pragma unroll
          for (int m = 0; m < M; ++m) dot[m][r] = fmaf(xs[m][e], v, dot[m][r]);
        }
      }
    }
#pragma unroll
    for (int m = 0; m < M; ++m)
#pragma unroll
      for (int r = 0; r < R; ++r) acc[m][r] = fmaf(scale[r], dot[m][r], acc[m][r]);
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
  if (bias) sum += to_float(bias[row]);
  out[int64_t(m) * n + row] = from_float<O>(sum);
}

template <typename T, typename O, typename B, int M, bool kRows16>
void launch_rows(const void* x, const void* w, const void* bias, void* out, int n, int k, int group,
                 cudaStream_t stream) {
  // Blocks of 128 threads for rows of up to 4096 columns (128 chunks: every thread has one),
  // four rows each for a single token, so each thread keeps eight loads in flight; 256 threads
  // and two rows (or one, K >= 8192: the down projections) for longer rows. Many blocks per SM
  // either way, as the 16-bit GEMV chooses (cuda_gemv.cu).
  auto run = [&](auto kernel, int rows, int threads) {
    launch_chained(kernel, unsigned((n + rows - 1) / rows), threads, 0, stream,
                   static_cast<const T*>(x), static_cast<const uint8_t*>(w),
                   static_cast<const B*>(bias), static_cast<O*>(out), n, k, group);
  };
  if (k <= 4096) {
    if constexpr (M == 1) return run(gemv_int4_kernel<T, O, B, M, 4, 128, kRows16>, 4, 128);
    return run(gemv_int4_kernel<T, O, B, M, 2, 128, kRows16>, 2, 128);
  }
  if (k >= 8192) return run(gemv_int4_kernel<T, O, B, M, 1, 256, kRows16>, 1, 256);
  run(gemv_int4_kernel<T, O, B, M, 2, 256, kRows16>, 2, 256);
}

template <typename T, typename O, typename B, bool kRows16>
void launch_m(const void* x, const void* w, const void* bias, void* out, int m, int n, int k,
              int group, cudaStream_t stream) {
  switch (m) {
    case 1:
      return launch_rows<T, O, B, 1, kRows16>(x, w, bias, out, n, k, group, stream);
    case 2:
      return launch_rows<T, O, B, 2, kRows16>(x, w, bias, out, n, k, group, stream);
    case 3:
      return launch_rows<T, O, B, 3, kRows16>(x, w, bias, out, n, k, group, stream);
    case 4:
      return launch_rows<T, O, B, 4, kRows16>(x, w, bias, out, n, k, group, stream);
    case 5:
      return launch_rows<T, O, B, 5, kRows16>(x, w, bias, out, n, k, group, stream);
    case 6:
      return launch_rows<T, O, B, 6, kRows16>(x, w, bias, out, n, k, group, stream);
    case 7:
      return launch_rows<T, O, B, 7, kRows16>(x, w, bias, out, n, k, group, stream);
    case 8:
      return launch_rows<T, O, B, 8, kRows16>(x, w, bias, out, n, k, group, stream);
    default:
      fail_internal("gemv_int4 takes 1 to ", kGemvMaxRows, " rows, not ", m);
  }
}

template <typename T, typename O, typename B>
void launch(const void* x, const void* w, const void* bias, void* out, int m, int n, int k,
            int group, cudaStream_t stream) {
  if ((k / 2 + 4 * int64_t(k / group)) % 16 == 0)
    return launch_m<T, O, B, true>(x, w, bias, out, m, n, k, group, stream);
  launch_m<T, O, B, false>(x, w, bias, out, m, n, k, group, stream);
}

// One thread per 4-byte word of values (8 columns of one group: group % 8 == 0): one 16-byte
// store of the 8 outputs, so the slab is written at bandwidth.
template <typename T>
__global__ void dequantize_int4_kernel(const uint8_t* __restrict__ w, T* __restrict__ out,
                                       int64_t first, int64_t rows, int k, int group) {
  const int64_t row_bytes = k / 2 + 4 * int64_t(k / group);
  const int words = k / 8;
  const int64_t total = rows * words;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / words;
    const int word_index = int(i % words);
    const uint8_t* row = w + (first + r) * row_bytes;
    const uint32_t word = __ldcs(reinterpret_cast<const uint32_t*>(row) + word_index);
    const __half2 sz =
        __ldg(reinterpret_cast<const __half2*>(row + k / 2) + 8 * word_index / group);
    const float s = __low2float(sz), z = __high2float(sz);
    uint4 packed;
    T* values = reinterpret_cast<T*>(&packed);
#pragma unroll
    for (int e = 0; e < 8; ++e) values[e] = from_float<T>((float(word >> (4 * e) & 15u) - z) * s);
    *reinterpret_cast<uint4*>(out + r * k + 8 * int64_t(word_index)) = packed;
  }
}

}  // namespace

bool gemv_int4_serves(int m, int k, int group, const void* x, const void* w) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const int64_t row_bytes = k / 2 + 4 * int64_t(k / group);
  return m >= 1 && m <= kGemvMaxRows && group % 32 == 0 && k % group == 0 && row_bytes % 8 == 0 &&
         aligned(x) && aligned(w);
}

void gemv_int4(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
               DType out_dtype, int m, int n, int k, int group, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    with_float(bias ? bias_dtype : DType::F32, [&](auto b) {
      using B = decltype(b);
      if (out_dtype == DType::F32)
        launch<T, float, B>(x, w, bias, out, m, n, k, group, stream);
      else
        launch<T, T, B>(x, w, bias, out, m, n, k, group, stream);
    });
  });
}

void dequantize_int4(const void* w, int64_t first, int64_t rows, int k, int group, void* out,
                     DType dtype, cudaStream_t stream) {
  const int64_t total = rows * (k / 8);
  if (total == 0) return;
  if (k % 8 != 0 || group % 8 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    fail_internal("dequantize_int4 takes k and group in multiples of 8 and a 16-byte aligned slab");
  const unsigned blocks = unsigned(std::min<int64_t>((total + 255) / 256, 65535));
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    dequantize_int4_kernel<T><<<blocks, 256, 0, stream>>>(
        static_cast<const uint8_t*>(w), static_cast<T*>(out), first, rows, k, group);
  });
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace qwenvl::cuda
