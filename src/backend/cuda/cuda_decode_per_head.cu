// Decode attention for short contexts (up to 1,024 keys, see cuda_decode_attention.cu): one block
// handles one query head and one slice of the keys, on CUDA cores: tiles of 64 keys
// double-buffered in shared memory by cp.async, scores with two threads per key, an online
// softmax, then P·V with a thread per output dimension. A block's work on one tile is a long
// serial chain, so slices are as short as the grid allows; at short contexts this kernel's many
// small blocks (16 per slice for 3B) finish sooner than the per-kv-head kernel's few, while
// beyond ~1,000 keys reading each kv head's keys G times loses (see cuda_decode_attention.cu).
#include <algorithm>
#include <climits>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_decode_split.cuh"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_mma.cuh"

namespace qwenvl::cuda::decode {

namespace {

constexpr int kThreads = 128;

// Query heads one block serves (of the heads_q / heads_kv that share a kv head): each thread's
// score and P·V loops run over them one after the other, so fewer heads per block means a
// shorter chain; the blocks of one kv head read the same keys, mostly from L2. One head per block
// is the fastest (3B on an H200: 8 heads per block take 11 us per step's attention, 2 heads 6 us).
constexpr int kHeadsPerBlock = 1;
int head_groups(const AttentionArgs& args) {
  return (args.heads_q / args.heads_kv + kHeadsPerBlock - 1) / kHeadsPerBlock;
}

template <typename T, int D, int G>
__global__ void __launch_bounds__(kThreads)
    per_head_kernel(AttentionArgs args, Partials part, int splits) {
  // K and V tiles, two stages each (dynamic: 70 KB for head_dim 128).
  extern __shared__ __align__(16) unsigned char shared_raw[];
  auto k_tiles = reinterpret_cast<T(*)[kTile * kStride<D>]>(shared_raw);
  auto v_tiles = k_tiles + 2;
  __shared__ float q_s[G][D];
  __shared__ float p_s[G][kTile];
  __shared__ float alpha_s[G];

  const int split = blockIdx.x, segment = blockIdx.z;
  // Block y serves query heads [head0, head0 + group) of kv head hkv: at most G of the kv head's
  // heads_q / heads_kv, so that each thread's serial work stays short.
  const int kv_group = args.heads_q / args.heads_kv, head_groups = (kv_group + G - 1) / G;
  const int hkv = blockIdx.y / head_groups, sub = blockIdx.y % head_groups;
  const int head0 = hkv * kv_group + sub * G;
  const int group = min(G, kv_group - sub * G);
  Slice slice;
  if (!slice_of(args, segment, split, splits, slice)) return;
  const int64_t q_row = slice.q_row;
  const int used = slice.used, key_begin = slice.key_begin, key_end = slice.key_end,
            tiles = slice.tiles;
  const T* q = static_cast<const T*>(args.q);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  auto load = [&](int tile, int stage, int lo, int hi) {
    copy_tile_rows<T, D, kThreads>(args, slice, hkv, tile, lo, hi, k_tiles[stage], v_tiles[stage]);
  };

  // See cuda_decode_split.cuh.
  copy_first_tile_around_wait<T, D, kThreads>(args, slice, hkv, k_tiles[0], v_tiles[0]);
  cp_async_commit();

  const float scale_log2 = args.scale * kLog2e;
  for (int i = threadIdx.x; i < group * D; i += kThreads) {
    int gi = i / D, d = i % D;
    q_s[gi][d] = to_float(q[(q_row * args.heads_q + head0 + gi) * int64_t(D) + d]) * scale_log2;
  }

  // Warp w keeps the running max / sum of heads w and w + 4.
  float run_max[2] = {-INFINITY, -INFINITY}, run_sum[2] = {0.0f, 0.0f};
  // Thread d accumulates output dimension d of every head.
  float o[G];
#pragma unroll
  for (int gi = 0; gi < G; ++gi) o[gi] = 0.0f;

  for (int tile = 0; tile < tiles; ++tile) {
    const int stage = tile & 1;
    if (tile + 1 < tiles) {
      load(tile + 1, stage ^ 1, INT_MIN, INT_MAX);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int key0 = key_begin + tile * kTile;

    // Scores: two threads per key, each over half of the dimensions.
    {
      const int r = threadIdx.x / 2, half = threadIdx.x % 2;
      constexpr int kHalf = D / 2;
      float dot[G];
#pragma unroll
      for (int gi = 0; gi < G; ++gi) dot[gi] = 0.0f;
      const T* krow = &k_tiles[stage][r * kStride<D> + half * kHalf];
#pragma unroll
      for (int d = 0; d < kHalf; d += 8) {
        Vec<T> kv = load16(krow + d);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          float kf = to_float(kv.v[j]);
#pragma unroll
          for (int gi = 0; gi < G; ++gi)
            if (gi < group) dot[gi] += kf * q_s[gi][half * kHalf + d + j];
        }
      }
      bool valid = key0 + r < key_end;
#pragma unroll
      for (int gi = 0; gi < G; ++gi) {
        float total = dot[gi] + __shfl_xor_sync(0xffffffffu, dot[gi], 1);
        if (half == 0 && gi < group) p_s[gi][r] = valid ? total : -INFINITY;
      }
    }
    __syncthreads();

    // Online softmax per head over the tile.
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      int gi = warp + 4 * j;
      if (gi < group) {
        float s0 = p_s[gi][lane], s1 = p_s[gi][lane + 32];
        float tile_max = warp_max(fmaxf(s0, s1));
        float new_max = fmaxf(run_max[j], tile_max);
        float base = new_max == -INFINITY ? 0.0f : new_max;
        float alpha = exp2f(run_max[j] - base);
        float p0 = exp2f(s0 - base), p1 = exp2f(s1 - base);
        run_sum[j] = run_sum[j] * alpha + warp_sum(p0 + p1);
        run_max[j] = new_max;
        p_s[gi][lane] = p0;
        p_s[gi][lane + 32] = p1;
        if (lane == 0) alpha_s[gi] = alpha;
      }
    }
    __syncthreads();

    // O = O * alpha + P·V.
    if (threadIdx.x < D) {
      const int d = threadIdx.x;
#pragma unroll
      for (int gi = 0; gi < G; ++gi)
        if (gi < group) o[gi] *= alpha_s[gi];
      for (int r = 0; r < kTile; ++r) {
        float value = to_float(v_tiles[stage][r * kStride<D> + d]);
#pragma unroll
        for (int gi = 0; gi < G; ++gi)
          if (gi < group) o[gi] += p_s[gi][r] * value;
      }
    }
    __syncthreads();
  }

  if (used == 1) {  // the only slice: normalise and write the output itself
    __shared__ float sum_s[G];
    if (lane == 0)
#pragma unroll
      for (int j = 0; j < 2; ++j)
        if (warp + 4 * j < group) sum_s[warp + 4 * j] = run_sum[j];
    __syncthreads();
    if (threadIdx.x < D) {
      T* out = static_cast<T*>(args.out);
#pragma unroll
      for (int gi = 0; gi < G; ++gi)
        if (gi < group)
          out[(q_row * args.heads_q + head0 + gi) * int64_t(D) + threadIdx.x] =
              from_float<T>(sum_s[gi] > 0.0f ? o[gi] / sum_s[gi] : 0.0f);
    }
    return;
  }
  const size_t row0 = (size_t(segment) * args.heads_q + head0) * splits + split;
  if (threadIdx.x < D) {
#pragma unroll
    for (int gi = 0; gi < G; ++gi)
      if (gi < group) part.o[(row0 + size_t(gi) * splits) * D + threadIdx.x] = o[gi];
  }
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      int gi = warp + 4 * j;
      if (gi < group) {
        part.max[row0 + size_t(gi) * splits] = run_max[j];
        part.sum[row0 + size_t(gi) * splits] = run_sum[j];
      }
    }
  }
}

template <typename T, int D>
void launch(const AttentionArgs& args, const Partials& part, int splits, cudaStream_t stream) {
  constexpr auto kernel = per_head_kernel<T, D, kHeadsPerBlock>;
  constexpr size_t bytes = size_t(4) * kTile * kStride<D> * sizeof(T);
  allow_dynamic_shared_memory<kernel>(bytes);
  dim3 grid(unsigned(splits), unsigned(args.heads_kv * head_groups(args)), unsigned(args.segments));
  launch_chained(kernel, grid, kThreads, bytes, stream, args, part, splits);
}

}  // namespace

int per_head_splits(const AttentionArgs& args, int multiprocessors) {
  return split_count(args, args.heads_kv * head_groups(args) * args.segments, multiprocessors);
}

void per_head(const AttentionArgs& args, const Partials& part, int splits, cudaStream_t stream) {
  with_half_and_head_dim(args.dtype, args.head_dim, [&](auto tag, auto dim) {
    launch<decltype(tag), decltype(dim)::value>(args, part, splits, stream);
  });
}

}  // namespace qwenvl::cuda::decode
