// Flash attention (FA2 style) for prefill and vision: varlen segments, GQA, bottom-right causal
// masks, online softmax in fp32, no score matrix in memory. mma.sync m16n8k16 on bf16/f16.
//
// A block owns kBlockQ = 64 queries of one segment and one query head: 4 warps x 16 rows. It
// walks the segment's keys in tiles of KB = 128 keys (64 when no segment has more than 64),
// double-buffered in shared memory by cp.async. Per tile a warp computes S = Q·K^T (16 x KB) in
// registers, updates the running row max / sum, rescales its O accumulator and adds P·V, with P
// converted straight from the S accumulators into A fragments (the accumulator and A layouts line
// up pairwise).
//
// The rounding follows cuDNN's fused attention, which transformers' SDPA runs on Hopper, so that
// our bf16 activations equal transformers' bit for bit (checked against it on random inputs,
// docs/CUDA.md): 128-key tiles, scores scaled into the log2 domain by one multiply, each
// tile's probabilities summed per thread before they join the rescaled running sum, P rounded
// to bf16 for P·V, O times the approximate reciprocal of the row sum at the end. With 64-key tiles
// one output in ten would round differently.
//
// Fragment layouts (PTX ISA, mma.m16n8k16): lane = 4g + t. A: a0 (row g, cols 2t..2t+1),
// a1 (row g+8), a2 (row g, cols 2t+8..), a3 (row g+8, cols 2t+8..). B: b0 (k 2t..2t+1, col g),
// b1 (k 2t+8..). C: c0,c1 (row g, cols 2t..2t+1), c2,c3 (row g+8).
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_paged_keys.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kBlockQ = 64;
constexpr int kWarps = 4;
constexpr float kLog2e = 1.4426950408889634f;

// The hardware's approximate reciprocal (rcp.approx.ftz, about 1 ulp), as cuDNN normalizes with;
// 1.0f / x (correctly rounded) rounds one output in 200,000 differently.
__device__ __forceinline__ float reciprocal_approx(float x) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

// Shared rows are padded by 16 bytes so that the 8 rows an ldmatrix phase reads fall in
// distinct banks (row strides of 272 / 176 bytes for head_dim 128 / 80).
template <int D>
constexpr int kStride = D + 8;

template <int D, int KB>
constexpr size_t shared_bytes() {
  return size_t(2) * 2 * KB * kStride<D> * 2;  // 2 stages x (K, V)
}

template <typename T, int D, int KB>
__device__ __forceinline__ void load_tile(T* k_tile, T* v_tile, const T* k, const T* v,
                                          const AttentionArgs& args, int segment, int64_t k_start,
                                          int key0, int keys, int heads_kv, int hkv) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  for (int i = threadIdx.x; i < KB * kChunks; i += kWarps * 32) {
    int r = i / kChunks, c = i % kChunks;
    int key = key0 + r;
    bool valid = key < keys;
    int64_t offset =
        (key_row(args, segment, k_start, valid ? key : 0) * heads_kv + hkv) * int64_t(D) + c * 8;
    cp_async16(k_tile + r * kStride<D> + c * 8, k + offset, valid);
    cp_async16(v_tile + r * kStride<D> + c * 8, v + offset, valid);
  }
}

template <typename T, int D, int KB>
__global__ void __launch_bounds__(kWarps * 32)
    flash_attention_kernel(AttentionArgs args, int q_tiles) {
  extern __shared__ __align__(16) unsigned char shared_raw[];
  T* shared = reinterpret_cast<T*>(shared_raw);
  // Heads vary fastest, and causal query tiles go last tile first: the hardware hands out blocks
  // in index order, so the longest rows of the triangle start first and the short ones fill the
  // tail, instead of a few long blocks running alone at the end.
  const int h = blockIdx.x % args.heads_q;
  const int tile_index = blockIdx.x / args.heads_q;
  const int segment = tile_index / q_tiles;
  const int q_tile = args.causal ? q_tiles - 1 - tile_index % q_tiles : tile_index % q_tiles;
  const int64_t q_start = args.cu_q[segment], k_start = args.cu_k[segment];
  const int nq = int(args.cu_q[segment + 1] - q_start), nk = int(args.cu_k[segment + 1] - k_start);
  const int q0 = q_tile * kBlockQ;
  if (q0 >= nq) return;
  const int hkv = h / (args.heads_q / args.heads_kv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int offset = nk - nq;  // bottom-right alignment: query i sees keys <= i + offset
  const T* q = static_cast<const T*>(args.q);
  const T* k = static_cast<const T*>(args.k);
  const T* v = static_cast<const T*>(args.v);
  T* out = static_cast<T*>(args.out);

  // Keys this block can see at all.
  int key_end = nk;
  if (args.causal) key_end = max(0, min(nk, q0 + kBlockQ + offset));
  const int tiles = (key_end + KB - 1) / KB;

  // Q fragments for this warp's 16 rows, straight from global memory (read once).
  const int row_a = q0 + warp * 16 + g, row_b = row_a + 8;
  uint32_t qf[D / 16][4];
  {
    const T* qa = q + ((q_start + row_a) * args.heads_q + h) * int64_t(D);
    const T* qb = q + ((q_start + row_b) * args.heads_q + h) * int64_t(D);
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      int col = ks * 16 + 2 * t;
      qf[ks][0] = row_a < nq ? *reinterpret_cast<const uint32_t*>(qa + col) : 0u;
      qf[ks][1] = row_b < nq ? *reinterpret_cast<const uint32_t*>(qb + col) : 0u;
      qf[ks][2] = row_a < nq ? *reinterpret_cast<const uint32_t*>(qa + col + 8) : 0u;
      qf[ks][3] = row_b < nq ? *reinterpret_cast<const uint32_t*>(qb + col + 8) : 0u;
    }
  }

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};
  const float scale_log2 = args.scale * kLog2e;

  // Stage s holds K at shared + 2s·tile and V at shared + (2s + 1)·tile (pointer arithmetic, not
  // an array of pointers: a run-time index would put the array in local memory).
  constexpr int kTileElems = KB * kStride<D>;
  if (tiles > 0)
    load_tile<T, D, KB>(shared, shared + kTileElems, k, v, args, segment, k_start, 0, key_end,
                        args.heads_kv, hkv);
  cp_async_commit();

  for (int tile = 0; tile < tiles; ++tile) {
    const int stage = tile & 1;
    if (tile + 1 < tiles) {
      T* next = shared + (stage ^ 1) * 2 * kTileElems;
      load_tile<T, D, KB>(next, next + kTileElems, k, v, args, segment, k_start, (tile + 1) * KB,
                          key_end, args.heads_kv, hkv);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* ks_tile = shared + stage * 2 * kTileElems;
    const T* vs_tile = ks_tile + kTileElems;

    // S = Q·K^T for KB keys: KB / 8 n-tiles of 8 keys.
    float s[KB / 8][4];
#pragma unroll
    for (int n = 0; n < KB / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
      for (int np = 0; np < KB / 16; ++np) {
        // Matrices: (keys +0..7, dims +0..7), (keys +0..7, dims +8..15), (keys +8.., dims +0..),
        // (keys +8.., dims +8..): b0/b1 of key tile 2np, then of key tile 2np+1.
        int m = lane / 8, r = lane % 8;
        const T* p = ks_tile + (np * 16 + (m >> 1) * 8 + r) * kStride<D> + ks * 16 + (m & 1) * 8;
        uint32_t b[4];
        ldmatrix_x4(b, p);
        mma16816<T>(s[2 * np], qf[ks], b[0], b[1]);
        mma16816<T>(s[2 * np + 1], qf[ks], b[2], b[3]);
      }
    }

    // Mask and scale into the log2 domain; the tile's row maxima.
    const int key_base = tile * KB;
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < KB / 8; ++n) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        int key = key_base + n * 8 + 2 * t + (c & 1);
        int row = c < 2 ? row_a : row_b;
        bool visible = key < key_end && (!args.causal || key <= row + offset);
        float value = visible ? s[n][c] * scale_log2 : -INFINITY;
        s[n][c] = value;
        tile_max[c >> 1] = fmaxf(tile_max[c >> 1], value);
      }
    }
    float alpha[2], base[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 1));
      tile_max[i] = fmaxf(tile_max[i], __shfl_xor_sync(0xffffffffu, tile_max[i], 2));
      float new_max = fmaxf(row_max[i], tile_max[i]);
      base[i] = new_max == -INFINITY ? 0.0f : new_max;  // a row with nothing visible yet
      alpha[i] = exp2f(row_max[i] - base[i]);           // 0 when row_max is -inf
      row_max[i] = new_max;
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= alpha[0];
      o[n][1] *= alpha[0];
      o[n][2] *= alpha[1];
      o[n][3] *= alpha[1];
    }
    float tile_sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int n = 0; n < KB / 8; ++n) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        float p = exp2f(s[n][c] - base[c >> 1]);
        s[n][c] = p;
        tile_sum[c >> 1] += p;
      }
    }
    row_sum[0] = row_sum[0] * alpha[0] + tile_sum[0];
    row_sum[1] = row_sum[1] * alpha[1] + tile_sum[1];

    // O += P·V: P's accumulators become A fragments, V^T comes from ldmatrix.trans.
#pragma unroll
    for (int kk = 0; kk < KB / 16; ++kk) {
      uint32_t a[4];
      a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        // Matrices: (keys +0..7, dims +0..7), (keys +8..15, dims +0..7), (keys +0.., dims +8..),
        // (keys +8.., dims +8..): b0/b1 of dim tile 2dp, then of dim tile 2dp+1.
        int m = lane / 8, r = lane % 8;
        const T* p = vs_tile + (kk * 16 + (m & 1) * 8 + r) * kStride<D> + dp * 16 + (m >> 1) * 8;
        uint32_t b[4];
        ldmatrix_x4_trans(b, p);
        mma16816<T>(o[2 * dp], a, b[0], b[1]);
        mma16816<T>(o[2 * dp + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites the stage read here
  }

  // Normalize and store. A row that saw no key (causal with more queries than keys) is zero.
  float inv[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    float sum = row_sum[i];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    inv[i] = sum > 0.0f ? reciprocal_approx(sum) : 0.0f;
  }
  T* oa = out + ((q_start + row_a) * args.heads_q + h) * int64_t(D);
  T* ob = out + ((q_start + row_b) * args.heads_q + h) * int64_t(D);
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    int col = n * 8 + 2 * t;
    if (row_a < nq) {
      oa[col] = from_float<T>(o[n][0] * inv[0]);
      oa[col + 1] = from_float<T>(o[n][1] * inv[0]);
    }
    if (row_b < nq) {
      ob[col] = from_float<T>(o[n][2] * inv[1]);
      ob[col + 1] = from_float<T>(o[n][3] * inv[1]);
    }
  }
}

template <typename T, int D, int KB>
void launch_tiles(const AttentionArgs& args, cudaStream_t stream) {
  constexpr auto kernel = flash_attention_kernel<T, D, KB>;
  constexpr size_t bytes = shared_bytes<D, KB>();
  allow_dynamic_shared_memory<kernel>(bytes);
  int q_tiles = (args.max_q + kBlockQ - 1) / kBlockQ;
  const unsigned blocks = unsigned(q_tiles) * unsigned(args.segments) * unsigned(args.heads_q);
  kernel<<<blocks, kWarps * 32, bytes, stream>>>(args, q_tiles);
  CUDA_CHECK_LAUNCH();
}

// Segments of at most 64 keys (the vision windows) fit one tile of either size, with the same
// rounding: the smaller tile skips the masked half.
template <typename T, int D>
void launch(const AttentionArgs& args, cudaStream_t stream) {
  if (args.max_k <= 64)
    launch_tiles<T, D, 64>(args, stream);
  else
    launch_tiles<T, D, 128>(args, stream);
}

}  // namespace

bool flash_attention_supports(int head_dim) { return attention_head_dim_supported(head_dim); }

void flash_attention(const AttentionArgs& args, cudaStream_t stream) {
  with_half_and_head_dim(args.dtype, args.head_dim, [&](auto tag, auto dim) {
    launch<decltype(tag), decltype(dim)::value>(args, stream);
  });
}

}  // namespace qwenvl::cuda
