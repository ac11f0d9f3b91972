// Split-K attention for decode: each segment has at most one query (which, bottom-right
// aligned, sees every key of its segment). One block handles one kv head, the G query heads
// that read it, and one slice of the keys; it writes an unnormalized partial output with its
// row max and sum, and a combine kernel merges the slices. Slice bounds are computed on the
// device from cu_k, and the grid depends only on max_k, so a captured graph stays valid while
// the context grows. A segment uses no more slices than it has 64-key tiles (the other blocks exit
// at once, and the combine reads only those slices; 3B decode at short context 389.8 -> 390.8
// tok/s); with one, its block writes the output itself and the combine skips the segment.
//
// Reading K and V is the whole cost: tiles of 64 keys are double-buffered in shared memory by
// cp.async with 16-byte copies; scores and P·V run on CUDA cores in fp32 (G <= 8 heads).
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_mma.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kTile = 64;
constexpr int kThreads = 128;
constexpr int kMaxSplits = 256;
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
constexpr int kStride = D + 8;  // 16-byte padding, as in the flash kernel

// A block's work on one tile is a long serial chain (G heads x 64 keys per thread), so slices
// are as short as the grid allows: one tile each up to two blocks per multiprocessor. A context
// of one tile takes one slice, and then no combine kernel runs at all.
// Query heads one block serves (of the heads_q / heads_kv that share a kv head): each thread's
// score and P·V loops run over them one after the other, so fewer heads per block means a
// shorter chain; the blocks of one kv head read the same keys, mostly from L2. 3B, one decode
// step's attention (Nsight, H200): 8 heads per block 11 us, 2 heads 6 us; 1 head then made the
// whole decode about 1% faster on an H100.
constexpr int kHeadsPerBlock = 1;
int head_groups(const AttentionArgs& args) {
  return (args.heads_q / args.heads_kv + kHeadsPerBlock - 1) / kHeadsPerBlock;
}

int split_count(const AttentionArgs& args, int multiprocessors) {
  int tiles = std::max(1, (args.max_k + kTile - 1) / kTile);
  int blocks_per_split = args.heads_kv * head_groups(args) * args.segments;
  int wanted = (2 * multiprocessors + blocks_per_split - 1) / blocks_per_split;
  return std::clamp(wanted, 1, std::min(tiles, kMaxSplits));
}

// Slices in use for a segment of nk keys: at least a tile each, so a short context takes few of
// them (the others exit at once) and the combine reads only those; one takes no combine at all.
__device__ __forceinline__ int used_splits(int nk, int splits) {
  return min(splits, max(1, (nk + kTile - 1) / kTile));
}

struct Partials {
  float* o;    // [segments, heads_q, splits, D]
  float* max;  // [segments, heads_q, splits], log2 domain
  float* sum;  // [segments, heads_q, splits]
};

Partials partials_in(void* scratch, const AttentionArgs& args, int splits) {
  size_t rows = size_t(args.segments) * args.heads_q * splits;
  float* base = static_cast<float*>(scratch);
  return {base, base + rows * args.head_dim, base + rows * args.head_dim + rows};
}

template <typename T, int D, int G>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(AttentionArgs args, Partials part,
                                                                int splits) {
  // K and V tiles, two stages each (dynamic: 70 KB for head_dim 128).
  extern __shared__ __align__(16) unsigned char shared_raw[];
  auto k_tiles = reinterpret_cast<T(*)[kTile * kStride<D>]>(shared_raw);
  auto v_tiles = k_tiles + 2;
  __shared__ float q_s[G][D];
  __shared__ float p_s[G][kTile];
  __shared__ float alpha_s[G];

  chain_start();
  const int split = blockIdx.x, segment = blockIdx.z;
  // Block y serves query heads [head0, head0 + group) of kv head hkv: at most G of the kv head's
  // heads_q / heads_kv, so that each thread's serial work stays short.
  const int kv_group = args.heads_q / args.heads_kv, head_groups = (kv_group + G - 1) / G;
  const int hkv = blockIdx.y / head_groups, sub = blockIdx.y % head_groups;
  const int head0 = hkv * kv_group + sub * G;
  const int group = min(G, kv_group - sub * G);
  const int nq = args.cu_q[segment + 1] - args.cu_q[segment];
  if (nq == 0) return;  // nothing to attend; combine skips the segment too
  const int64_t q_row = args.cu_q[segment], k_start = args.cu_k[segment];
  const int nk = args.cu_k[segment + 1] - args.cu_k[segment];
  const int used = used_splits(nk, splits);
  if (split >= used) return;
  const int chunk = (nk + used - 1) / used;
  const int key_begin = min(nk, split * chunk), key_end = min(nk, key_begin + chunk);
  const int tiles = (key_end - key_begin + kTile - 1) / kTile;
  const T* q = static_cast<const T*>(args.q);
  const T* k = static_cast<const T*>(args.k);
  const T* v = static_cast<const T*>(args.v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  const float scale_log2 = args.scale * kLog2e;
  for (int i = threadIdx.x; i < group * D; i += kThreads) {
    int gi = i / D, d = i % D;
    q_s[gi][d] = to_float(q[(q_row * args.heads_q + head0 + gi) * int64_t(D) + d]) * scale_log2;
  }

  auto load = [&](int tile, int stage) {
    constexpr int kChunks = D / 8;
    int key0 = key_begin + tile * kTile;
    for (int i = threadIdx.x; i < kTile * kChunks; i += kThreads) {
      int r = i / kChunks, c = i % kChunks;
      int key = key0 + r;
      bool valid = key < key_end;
      int64_t offset = ((k_start + (valid ? key : 0)) * args.heads_kv + hkv) * int64_t(D) + c * 8;
      cp_async16(&k_tiles[stage][r * kStride<D> + c * 8], k + offset, valid);
      cp_async16(&v_tiles[stage][r * kStride<D> + c * 8], v + offset, valid);
    }
  };

  // Warp w keeps the running max / sum of heads w and w + 4.
  float run_max[2] = {-INFINITY, -INFINITY}, run_sum[2] = {0.0f, 0.0f};
  // Thread d accumulates output dimension d of every head.
  float o[G];
#pragma unroll
  for (int gi = 0; gi < G; ++gi) o[gi] = 0.0f;

  if (tiles > 0) load(0, 0);
  cp_async_commit();
  for (int tile = 0; tile < tiles; ++tile) {
    const int stage = tile & 1;
    if (tile + 1 < tiles) {
      load(tile + 1, stage ^ 1);
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

// One block per (query head, segment): the slices' maxima and sums are reduced by all threads at
// once, then kCombineGroups groups of threads each sum a share of the slices' outputs, so no
// thread walks the splits' partials one dependent load after another.
constexpr int kCombineThreads = 256;
constexpr int kCombineGroups = kCombineThreads / 128;  // head_dim <= 128

template <typename T>
__global__ void __launch_bounds__(kCombineThreads)
    decode_combine_kernel(AttentionArgs args, Partials part, int splits) {
  __shared__ float weight_s[kMaxSplits];
  __shared__ float reduce_s[32];
  __shared__ float acc_s[kCombineGroups][128];
  chain_start();
  const int h = blockIdx.x, segment = blockIdx.y;
  const int nq = args.cu_q[segment + 1] - args.cu_q[segment];
  if (nq == 0) return;
  const size_t row0 = (size_t(segment) * args.heads_q + h) * splits;
  const int nk = args.cu_k[segment + 1] - args.cu_k[segment];
  const int used = used_splits(nk, splits);
  if (used == 1) return;  // the split kernel wrote the output

  float local_max = -INFINITY;
  for (int i = threadIdx.x; i < used; i += kCombineThreads)
    local_max = fmaxf(local_max, part.max[row0 + i]);
  local_max = warp_max(local_max);
  if (threadIdx.x % 32 == 0) reduce_s[threadIdx.x / 32] = local_max;
  __syncthreads();
  float global_max = -INFINITY;
  for (int w = 0; w < kCombineThreads / 32; ++w) global_max = fmaxf(global_max, reduce_s[w]);
  const float base = global_max == -INFINITY ? 0.0f : global_max;
  float local_sum = 0.0f;
  for (int i = threadIdx.x; i < used; i += kCombineThreads) {
    const float w = exp2f(part.max[row0 + i] - base);  // 0 for an empty slice
    weight_s[i] = w;
    local_sum += part.sum[row0 + i] * w;
  }
  const float sum = block_sum(local_sum, reduce_s);  // its barriers also publish weight_s

  const int group = threadIdx.x / 128, d = threadIdx.x % 128;
  float acc = 0.0f;
  if (d < args.head_dim) {
#pragma unroll 8
    for (int i = group; i < used; i += kCombineGroups)
      acc += part.o[(row0 + i) * args.head_dim + d] * weight_s[i];
  }
  acc_s[group][d] = acc;
  __syncthreads();
  if (group == 0 && d < args.head_dim) {
    for (int g = 1; g < kCombineGroups; ++g) acc += acc_s[g][d];
    T* out = static_cast<T*>(args.out);
    const int64_t q_row = args.cu_q[segment];
    out[(q_row * args.heads_q + h) * int64_t(args.head_dim) + d] =
        from_float<T>(sum > 0.0f ? acc / sum : 0.0f);
  }
}

template <typename T, int D>
void launch_split(const AttentionArgs& args, const Partials& part, int splits,
                  cudaStream_t stream) {
  auto kernel = decode_split_kernel<T, D, kHeadsPerBlock>;
  constexpr size_t bytes = size_t(4) * kTile * kStride<D> * sizeof(T);
  static bool configured = false;
  if (!configured) {
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    int(bytes)));
    configured = true;
  }
  dim3 grid(unsigned(splits), unsigned(args.heads_kv * head_groups(args)),
            unsigned(args.segments));
  launch_chained(kernel, grid, kThreads, bytes, stream, args, part, splits);
}

}  // namespace

bool decode_attention_supports(const AttentionArgs& args) {
  int group = args.heads_kv > 0 ? args.heads_q / args.heads_kv : 0;
  return args.max_q == 1 && group >= 1 && group <= kDecodeMaxGroup &&
         (args.head_dim == 16 || args.head_dim == 32 || args.head_dim == 64 ||
          args.head_dim == 80 || args.head_dim == 96 || args.head_dim == 128);
}

size_t decode_attention_scratch_bytes(const AttentionArgs& args, int multiprocessors) {
  size_t rows = size_t(args.segments) * args.heads_q * split_count(args, multiprocessors);
  return rows * (args.head_dim + 2) * sizeof(float);
}

void decode_attention(const AttentionArgs& args, void* scratch, int multiprocessors,
                      cudaStream_t stream) {
  int splits = split_count(args, multiprocessors);
  Partials part = partials_in(scratch, args, splits);
  with_half(args.dtype, [&](auto tag) {
    using T = decltype(tag);
    switch (args.head_dim) {
      case 16: launch_split<T, 16>(args, part, splits, stream); break;  // the tiny test models
      case 32: launch_split<T, 32>(args, part, splits, stream); break;
      case 64: launch_split<T, 64>(args, part, splits, stream); break;
      case 80: launch_split<T, 80>(args, part, splits, stream); break;
      case 96: launch_split<T, 96>(args, part, splits, stream); break;
      case 128: launch_split<T, 128>(args, part, splits, stream); break;
      default: fail("decode attention: unsupported head_dim ", args.head_dim);
    }
    if (splits > 1)
      launch_chained(decode_combine_kernel<T>,
                     dim3(unsigned(args.heads_q), unsigned(args.segments)), kCombineThreads, 0,
                     stream, args, part, splits);
  });
}

}  // namespace qwenvl::cuda
