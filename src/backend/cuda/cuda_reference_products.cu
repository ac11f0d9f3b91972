// Products that round as the reference's kernels do (see cuda_kernels.h): the patch embedding's
// fp32 dot products in order, and the pieces of a K split into parts (packing, folding).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_types.cuh"

namespace qwenvl::cuda {

namespace {

// out[m, n] = sum over k of x[m, k] · w[n, k], each output one fp32 accumulator that adds the
// products in increasing k, one rounding per step. Products of two bf16 or two fp16 values are
// exact in fp32, so the fused multiply-add rounds as a product followed by an addition would.
// A block computes a 128 x 128 tile of outputs, each of its 256 threads an 8 x 8 piece; the
// operands pass through shared memory as fp32, kStep values of K at a time.
constexpr int kTile = 128, kStep = 16, kInOrderThreads = 256;

// `vector`: k % 8 == 0 and 16-byte aligned x and w, staged 8 values per load.
template <typename T>
__global__ void __launch_bounds__(kInOrderThreads, 2)
    linear_in_order_kernel(const T* x, const T* w, T* out, int m, int n, int k, bool vector) {
  __shared__ __align__(16) float xs[kStep][kTile + 4];
  __shared__ __align__(16) float ws[kStep][kTile + 4];
  const int row0 = blockIdx.y * kTile, col0 = blockIdx.x * kTile;
  const int tid = threadIdx.x, my_rows = (tid / 16) * 8, my_cols = (tid % 16) * 8;
  float acc[8][8] = {};
  for (int k0 = 0; k0 < k; k0 += kStep) {
    // Each thread stages 8 of the tile's 128 x 16 values of x and 8 of w.
    if (vector) {
      const int r = tid / 2, c0 = (tid % 2) * 8, kk = k0 + c0;
      const bool x_in = row0 + r < m && kk < k, w_in = col0 + r < n && kk < k;
      Vec<T> xv, wv;
      if (x_in) xv = load16(x + int64_t(row0 + r) * k + kk);
      if (w_in) wv = load16(w + int64_t(col0 + r) * k + kk);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        xs[c0 + j][r] = x_in ? to_float(xv.v[j]) : 0.0f;
        ws[c0 + j][r] = w_in ? to_float(wv.v[j]) : 0.0f;
      }
    } else {
      for (int i = tid; i < kTile * kStep; i += kInOrderThreads) {
        const int r = i / kStep, c = i % kStep, kk = k0 + c;
        xs[c][r] = row0 + r < m && kk < k ? to_float(x[int64_t(row0 + r) * k + kk]) : 0.0f;
        ws[c][r] = col0 + r < n && kk < k ? to_float(w[int64_t(col0 + r) * k + kk]) : 0.0f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int c = 0; c < kStep; ++c) {
      float a[8], b[8];
      *reinterpret_cast<float4*>(a) = *reinterpret_cast<const float4*>(&xs[c][my_rows]);
      *reinterpret_cast<float4*>(a + 4) = *reinterpret_cast<const float4*>(&xs[c][my_rows + 4]);
      *reinterpret_cast<float4*>(b) = *reinterpret_cast<const float4*>(&ws[c][my_cols]);
      *reinterpret_cast<float4*>(b + 4) = *reinterpret_cast<const float4*>(&ws[c][my_cols + 4]);
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 8; ++i) {
    const int r = row0 + my_rows + i;
    if (r >= m) break;
    for (int j = 0; j < 8; ++j) {
      const int c = col0 + my_cols + j;
      if (c < n) out[int64_t(r) * n + c] = from_float<T>(acc[i][j]);
    }
  }
}

// A warp per row, kPackRowsPerBlock rows per block: the warp stages its source row in shared
// memory with 16-byte loads, then writes 8 consecutive packed columns at a time (one 16-byte
// store), picking each from the staged row, or 0 in a part's padding.
constexpr int kPackRowsPerBlock = 4;

template <typename T>
__global__ void pack_k_parts_kernel(const T* src, int64_t rows, int64_t src_ld, int used,
                                    bool vector, KParts parts, T* dst) {
  extern __shared__ __align__(16) unsigned char staged_bytes[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row = int64_t(blockIdx.x) * kPackRowsPerBlock + warp;
  if (row >= rows) return;
  T* staged = reinterpret_cast<T*>(staged_bytes) + warp * (used + 8);
  const T* src_row = src + row * src_ld;
  if (vector) {
    for (int c = lane * 8; c < used; c += 32 * 8) store16(staged + c, load16(src_row + c));
  } else {
    for (int c = lane; c < used; c += 32) staged[c] = src_row[c];
  }
  __syncwarp();
  // The source's own layout: its first `source_residue` columns, then a gap of `source_gap`.
  const ResidueFirst source{parts.source_count};
  const int source_residue = int(source.residue());
  const int source_gap = source_residue ? int(ResidueFirst::kTile) - source_residue : 0;
  T* dst_row = dst + row * int64_t(parts.width);
  int part = 0;
  for (int p = lane * 8; p < parts.width; p += 32 * 8) {
    while (part + 1 < parts.count && p >= parts.offset[part + 1]) ++part;
    const int begin = parts.begin[part], length = parts.length[part];
    const int residue = length % int(ResidueFirst::kTile);
    const int base = p - parts.offset[part];
    Vec<T> v;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int t = base + e;
      int column = t;
      if (residue && t >= residue)
        column = t < ResidueFirst::kTile ? -1 : t - int(ResidueFirst::kTile) + residue;
      const int q = begin + column;
      v.v[e] = column >= 0 && column < length
                   ? staged[source_residue && q >= source_residue ? q + source_gap : q]
                   : from_float<T>(0.0f);
    }
    store16(dst_row + p, v);
  }
}

// `vector`: n % 8 == 0 and 16-byte aligned out and part.
template <typename T>
__global__ void fold_part_kernel(T* out, const float* part, int64_t n, bool vector) {
  const int64_t i = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * 8;
  if (i >= n) return;
  if (vector) {
    Vec<T> o = load16(out + i);
    const float4 lo = *reinterpret_cast<const float4*>(part + i);
    const float4 hi = *reinterpret_cast<const float4*>(part + i + 4);
    const float p[8] = {lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w};
#pragma unroll
    for (int j = 0; j < 8; ++j) o.v[j] = from_float<T>(to_float(o.v[j]) + p[j]);
    store16(out + i, o);
    return;
  }
  for (int64_t j = i; j < min(n, i + 8); ++j) out[j] = from_float<T>(to_float(out[j]) + part[j]);
}

constexpr int kThreads = 256;

unsigned blocks_for(int64_t threads) { return unsigned((threads + kThreads - 1) / kThreads); }

}  // namespace

void linear_in_order(const void* x, const void* w, void* out, int64_t m, int64_t n, int64_t k,
                     DType dtype, cudaStream_t stream) {
  if (m == 0 || n == 0) return;
  const dim3 grid(unsigned((n + kTile - 1) / kTile), unsigned((m + kTile - 1) / kTile));
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    linear_in_order_kernel<T><<<grid, kInOrderThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(out), int(m), int(n),
        int(k), k % 8 == 0 && aligned16(x) && aligned16(w));
  });
  CUDA_CHECK(cudaGetLastError());
}

void pack_k_parts(const void* src, int64_t rows, int64_t src_ld, const KParts& parts, void* dst,
                  DType dtype, cudaStream_t stream) {
  if (rows == 0 || parts.count == 0) return;
  const int used = int(ResidueFirst{parts.source_count}.width());
  const bool vector = src_ld % 8 == 0 && aligned16(src);
  const size_t staged_bytes = size_t(kPackRowsPerBlock) * size_t(used + 8) * dtype_size(dtype);
  const unsigned blocks = unsigned((rows + kPackRowsPerBlock - 1) / kPackRowsPerBlock);
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    pack_k_parts_kernel<T><<<blocks, 32 * kPackRowsPerBlock, staged_bytes, stream>>>(
        static_cast<const T*>(src), rows, src_ld, used, vector, parts, static_cast<T*>(dst));
  });
  CUDA_CHECK(cudaGetLastError());
}

void fold_part(void* out, const float* part, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    fold_part_kernel<T><<<blocks_for((n + 7) / 8), kThreads, 0, stream>>>(
        static_cast<T*>(out), part, n, n % 8 == 0 && aligned16(out) && aligned16(part));
  });
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace qwenvl::cuda
