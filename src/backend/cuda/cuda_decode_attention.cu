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
// per query head: in 3B decode on an H100 the two break even near 1,024 keys, the per-head kernel
// ahead below, the per-kv-head kernel beyond. With several sequences the segments give the
// per-kv-head kernel blocks enough, and reading each key once wins at any length (3B, 128
// sequences of ~600 keys: the per-head kernel reads at 0.4 TB/s).
constexpr int kPerHeadMaxKeys = 1024;

bool per_head(const AttentionArgs& args) {
  return args.segments == 1 && args.max_k <= kPerHeadMaxKeys;
}

int split_count(const AttentionArgs& args, int multiprocessors) {
  return per_head(args) ? decode::per_head_splits(args, multiprocessors)
                        : decode::per_kv_head_splits(args, multiprocessors);
}

Partials partials_in(void* scratch, const AttentionArgs& args, int splits) {
  size_t rows = size_t(args.segments) * args.heads_q * splits;
  float* base = static_cast<float*>(scratch);
  return {base, base + rows * args.head_dim, base + rows * args.head_dim + rows};
}

// One block per (query head, segment). Warp w merges slices w, w + 8, ...: lane j holds the max and
// sum of the warp's slice j (kMaxSplits = 8 warps x 32 lanes), so the warp's max, the slices'
// weights and its sum take shuffles, not a serial chain per slice; then the warp sums its slices'
// outputs, a lane four dimensions of a slice with one 16-byte load, and the warps' states merge
// through shared memory. The segment's bounds are a step's inputs (set before the step, never
// written by the split kernel), read before the wait; the first slice's output is loaded with the
// maxima and sums, so that at short context (one slice per warp) the kernel waits on memory once.
// (Folding slice after slice into a running max and sum would be a serial exp2 chain per warp,
// slower at long contexts.)
constexpr int kCombineThreads = 256;
constexpr int kCombineWarps = kCombineThreads / 32;
static_assert(kCombineWarps * 32 >= decode::kMaxSplits,
              "a lane holds at most one slice's max and sum");

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

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, d4 = lane * 4;
  const bool has_dims = d4 < args.head_dim;
  const int d4_read = has_dims ? d4 : 0;  // lanes past head_dim read (and drop) the first four
  const int slices = used > warp ? (used - warp + kCombineWarps - 1) / kCombineWarps : 0;
  auto output = [&](int j) {
    return *reinterpret_cast<const float4*>(
        part.o + (row0 + warp + j * kCombineWarps) * args.head_dim + d4_read);
  };
  const float4 first = slices > 0 ? output(0) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const bool holds = lane < slices;
  const float slice_max = holds ? part.max[row0 + warp + lane * kCombineWarps] : -INFINITY;
  const float slice_sum = holds ? part.sum[row0 + warp + lane * kCombineWarps] : 0.0f;
  const float run_max = warp_max(slice_max);
  const float weight = exp2f(slice_max - (run_max == -INFINITY ? 0.0f : run_max));  // 0 if -inf
  const float run_sum = warp_sum(slice_sum * weight);
  const float w0 = __shfl_sync(0xffffffffu, weight, 0);
  float4 acc = make_float4(first.x * w0, first.y * w0, first.z * w0, first.w * w0);
#pragma unroll 8
  for (int j = 1; j < slices; ++j) {
    const float w = __shfl_sync(0xffffffffu, weight, j);
    const float4 o = output(j);
    acc.x += o.x * w;
    acc.y += o.y * w;
    acc.z += o.z * w;
    acc.w += o.w * w;
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
