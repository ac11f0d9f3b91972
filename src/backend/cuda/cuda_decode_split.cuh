#pragma once
// What the two decode attention kernels share (cuda_decode_per_head.cu for short contexts,
// cuda_decode_per_kv_head.cu beyond, chosen in cuda_decode_attention.cu): key tiles, the slices
// of a segment's keys, and the partial results the combine kernel merges.
#include <cuda_runtime.h>

#include "backend/cuda/cuda_kernels.h"

namespace qwenvl::cuda::decode {

constexpr int kTile = 64;  // keys per shared-memory tile
constexpr int kMaxSplits = 256;
constexpr int kMaxGroup = 16;  // query heads per kv head: the per-kv-head kernel's mma rows
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
constexpr int kStride = D + 8;  // 16-byte row padding, as in the flash kernel

// Slices in use for a segment of nk keys: at least a tile each, so a short context takes few of
// them (the others exit at once) and the combine reads only those; one takes no combine at all
// (its block writes the output). 3B decode at short context 389.8 -> 390.8 tok/s.
__device__ __forceinline__ int used_splits(int nk, int splits) {
  return min(splits, max(1, (nk + kTile - 1) / kTile));
}

// The slices' unnormalized outputs with their row max and sum, per query head.
struct Partials {
  float* o;    // [segments, heads_q, splits, D]
  float* max;  // [segments, heads_q, splits], log2 domain
  float* sum;  // [segments, heads_q, splits]
};

// Both split kernels start before the op that wrote q and the new keys ends (a chained launch,
// cuda_launch.cuh), and before waiting for it they read the segment bounds (cu_q, cu_k: uploaded
// with a step's inputs, never written by that op) and copy the keys before the segment's last nq
// (written by earlier steps), so that their first tile's memory latency overlaps that op's tail.

// Slices for `blocks_per_split` blocks each: two blocks per multiprocessor, at least a tile each.
int split_count(const AttentionArgs& args, int blocks_per_split, int multiprocessors);

// The split kernels: partials of `splits` slices, or the output where a segment uses one.
void per_head(const AttentionArgs& args, const Partials& part, int splits, cudaStream_t stream);
int per_head_splits(const AttentionArgs& args, int multiprocessors);
void per_kv_head(const AttentionArgs& args, const Partials& part, int splits, cudaStream_t stream);
int per_kv_head_splits(const AttentionArgs& args, int multiprocessors);

}  // namespace qwenvl::cuda::decode
