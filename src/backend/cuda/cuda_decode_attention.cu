// Split-K attention for decode: each segment has at most one query (which, bottom-right aligned,
// sees every key of its segment). A split kernel's blocks each take one slice of a segment's keys
// and write an unnormalized partial output with its row max and sum; the combine kernel here
// merges the slices. Slice bounds are computed on the device from cu_k, and the grid depends only
// on max_k, so a captured graph stays valid while the context grows.
//
// Two split kernels, chosen by max_k (the launch bound the caller captured its graph with): a block
// per query head on CUDA cores while max_k <= 1,024 (cuda_decode_per_head.cu: many small blocks,
// the shortest chain), and a block per kv head on tensor cores beyond (cuda_decode_per_kv_head.cu:
// each kv head's keys read once instead of once per query head).
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_decode_split.cuh"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace decode {

int split_count(const AttentionArgs& args, int blocks_per_split, int multiprocessors) {
  int tiles = std::max(1, (args.max_k + kTile - 1) / kTile);
  int wanted = (2 * multiprocessors + blocks_per_split - 1) / blocks_per_split;
  return std::clamp(wanted, 1, std::min(tiles, kMaxSplits));
}

}  // namespace decode

namespace {

using decode::Partials;
using decode::used_splits;

// Where the per-head kernel's many small blocks stop paying for reading each kv head's keys once
// per query head. 3B decode of 256 tokens, tok/s per-head / per-kv-head (its first, four-warp
// version): 391.5 / 384.5 from 29 keys, 378.7 / 374.6 from 512, 372.2 / 375.4 from 1,024, 358.7 /
// 371.6 from 2,048.
constexpr int kPerHeadMaxKeys = 1024;

bool per_head(const AttentionArgs& args) { return args.max_k <= kPerHeadMaxKeys; }

int split_count(const AttentionArgs& args, int multiprocessors) {
  return per_head(args) ? decode::per_head_splits(args, multiprocessors)
                        : decode::per_kv_head_splits(args, multiprocessors);
}

Partials partials_in(void* scratch, const AttentionArgs& args, int splits) {
  size_t rows = size_t(args.segments) * args.heads_q * splits;
  float* base = static_cast<float*>(scratch);
  return {base, base + rows * args.head_dim, base + rows * args.head_dim + rows};
}

// One block per (query head, segment), one round trip to memory after the wait: the segment's
// bounds are a step's inputs (set before the step, never written by the split kernel) and are read
// before it; then each warp folds a share of the slices into its own running max, sum and output
// (a lane four dimensions of a slice with one 16-byte load, the slice's max and sum with it), and
// the warps' states merge through shared memory. Before, the maxima, the sums and the outputs were
// read in three dependent rounds after the bounds.
constexpr int kCombineThreads = 256;
constexpr int kCombineWarps = kCombineThreads / 32;

template <typename T>
__global__ void __launch_bounds__(kCombineThreads)
    decode_combine_kernel(AttentionArgs args, Partials part, int splits) {
  __shared__ float max_s[kCombineWarps], sum_s[kCombineWarps];
  __shared__ __align__(16) float acc_s[kCombineWarps][128];
  const int h = blockIdx.x, segment = blockIdx.y;
  const int64_t q_row = args.cu_q[segment];
  const int nq = args.cu_q[segment + 1] - args.cu_q[segment];
  const int nk = args.cu_k[segment + 1] - args.cu_k[segment];
  chain_start();
  const int used = used_splits(nk, splits);
  if (nq == 0 || used == 1) return;  // no query, or the split kernel wrote the output
  const size_t row0 = (size_t(segment) * args.heads_q + h) * splits;

  const int warp = threadIdx.x / 32, d4 = threadIdx.x % 32 * 4;
  const bool has_dims = d4 < args.head_dim;
  float run_max = -INFINITY, run_sum = 0.0f;
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
  for (int i = warp; i < used; i += kCombineWarps) {
    const float slice_max = part.max[row0 + i], slice_sum = part.sum[row0 + i];
    float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (has_dims) o = *reinterpret_cast<const float4*>(part.o + (row0 + i) * args.head_dim + d4);
    const float new_max = fmaxf(run_max, slice_max);
    const float base = new_max == -INFINITY ? 0.0f : new_max;
    const float keep = exp2f(run_max - base), take = exp2f(slice_max - base);  // 0 for -inf
    run_sum = run_sum * keep + slice_sum * take;
    acc.x = acc.x * keep + o.x * take;
    acc.y = acc.y * keep + o.y * take;
    acc.z = acc.z * keep + o.z * take;
    acc.w = acc.w * keep + o.w * take;
    run_max = new_max;
  }
  if (threadIdx.x % 32 == 0) max_s[warp] = run_max, sum_s[warp] = run_sum;
  if (has_dims) *reinterpret_cast<float4*>(&acc_s[warp][d4]) = acc;
  __syncthreads();

  const int d = threadIdx.x;
  if (d >= args.head_dim) return;
  float global_max = -INFINITY;
#pragma unroll
  for (int w = 0; w < kCombineWarps; ++w) global_max = fmaxf(global_max, max_s[w]);
  const float base = global_max == -INFINITY ? 0.0f : global_max;
  float total = 0.0f, sum = 0.0f;
#pragma unroll
  for (int w = 0; w < kCombineWarps; ++w) {
    const float weight = exp2f(max_s[w] - base);  // 0 for a warp without slices
    total += acc_s[w][d] * weight;
    sum += sum_s[w] * weight;
  }
  T* out = static_cast<T*>(args.out);
  out[(q_row * args.heads_q + h) * int64_t(args.head_dim) + d] =
      from_float<T>(sum > 0.0f ? total / sum : 0.0f);
}

}  // namespace

bool decode_attention_supports(const AttentionArgs& args) {
  int group = args.heads_kv > 0 ? args.heads_q / args.heads_kv : 0;
  return args.max_q == 1 && group >= 1 && group <= decode::kMaxGroup &&
         attention_head_dim_supported(args.head_dim);
}

size_t decode_attention_scratch_bytes(const AttentionArgs& args, int multiprocessors) {
  size_t rows = size_t(args.segments) * args.heads_q * split_count(args, multiprocessors);
  return rows * (args.head_dim + 2) * sizeof(float);
}

void decode_attention(const AttentionArgs& args, void* scratch, int multiprocessors,
                      cudaStream_t stream) {
  int splits = split_count(args, multiprocessors);
  Partials part = partials_in(scratch, args, splits);
  if (per_head(args))
    decode::per_head(args, part, splits, stream);
  else
    decode::per_kv_head(args, part, splits, stream);
  if (splits > 1)
    with_half(args.dtype, [&](auto tag) {
      using T = decltype(tag);
      launch_chained(decode_combine_kernel<T>,
                     dim3(unsigned(args.heads_q), unsigned(args.segments)), kCombineThreads, 0,
                     stream, args, part, splits);
    });
}

}  // namespace qwenvl::cuda
