#pragma once
// What the two decode attention kernels share (cuda_decode_per_head.cu for short contexts,
// cuda_decode_per_kv_head.cu beyond, chosen in cuda_decode_attention.cu): key tiles, the slices
// of a segment's keys, and the partial results the combine kernel merges.
#include <cuda_runtime.h>

#include <climits>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_mma.cuh"
#include "backend/cuda/cuda_paged_keys.cuh"

namespace qwenvl::cuda::decode {

constexpr int kTile = 64;  // keys per shared-memory tile
constexpr int kMaxSplits = 256;
constexpr int kMaxGroup = 16;  // query heads per kv head: the per-kv-head kernel's mma rows
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
constexpr int kStride = D + 8;  // 16-byte row padding, as in the flash kernel

// Slices in use for a segment of nk keys: at least a tile each, so a short context takes few of
// them (the others exit at once) and the combine reads only those; one takes no combine at all
// (its block writes the output).
__device__ __forceinline__ int used_splits(int nk, int splits) {
  return min(splits, max(1, (nk + kTile - 1) / kTile));
}

// A block's slice of its segment's keys: [key_begin, key_end) of the segment's nk keys, in
// `tiles` tiles of kTile; its queries start at row q_row, its keys at row k_start.
struct Slice {
  int64_t q_row, k_start;
  int segment, nq, nk, used, key_begin, key_end, tiles;
};

// Slice `split` of `segment`, or false where the block has nothing to do: a segment without a
// query (the combine skips it too), or a slice past the ones its keys use.
__device__ __forceinline__ bool slice_of(const AttentionArgs& args, int segment, int split,
                                         int splits, Slice& s) {
  s.nq = args.cu_q[segment + 1] - args.cu_q[segment];
  if (s.nq == 0) return false;
  s.segment = segment, s.q_row = args.cu_q[segment], s.k_start = args.cu_k[segment];
  s.nk = args.cu_k[segment + 1] - args.cu_k[segment];
  s.used = used_splits(s.nk, splits);
  if (split >= s.used) return false;
  const int chunk = (s.nk + s.used - 1) / s.used;
  s.key_begin = min(s.nk, split * chunk), s.key_end = min(s.nk, s.key_begin + chunk);
  s.tiles = (s.key_end - s.key_begin + kTile - 1) / kTile;
  return true;
}

// cp.async copies of the rows of tile `tile` of the slice whose keys lie in [lo, hi), for kv head
// hkv, into k_tile / v_tile (rows kStride<D> apart), by the block's kThreads threads; rows past
// key_end are zero-filled.
template <typename T, int D, int kThreads>
__device__ __forceinline__ void copy_tile_rows(const AttentionArgs& args, const Slice& s, int hkv,
                                               int tile, int lo, int hi, T* k_tile, T* v_tile) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  const T* k = static_cast<const T*>(args.k);
  const T* v = static_cast<const T*>(args.v);
  const int key0 = s.key_begin + tile * kTile;
  for (int i = threadIdx.x; i < kTile * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks, key = key0 + r;
    if (key < lo || key >= hi) continue;
    const bool valid = key < s.key_end;
    const int64_t offset =
        (key_row(args, s.segment, s.k_start, valid ? key : 0) * args.heads_kv + hkv) * int64_t(D) +
        c * 8;
    cp_async16(k_tile + r * kStride<D> + c * 8, k + offset, valid);
    cp_async16(v_tile + r * kStride<D> + c * 8, v + offset, valid);
  }
}

// Tile 0 of the slice around the wait for the q/k/v product (chain_start): the keys earlier steps
// cached before it, the segment's last nq keys (which that product writes) after it.
template <typename T, int D, int kThreads>
__device__ __forceinline__ void copy_first_tile_around_wait(const AttentionArgs& args,
                                                            const Slice& s, int hkv, T* k_tile,
                                                            T* v_tile) {
  const int cached_end = s.nk - s.nq;
  if (s.tiles > 0)
    copy_tile_rows<T, D, kThreads>(args, s, hkv, 0, INT_MIN, cached_end, k_tile, v_tile);
  chain_start();
  if (s.tiles > 0)
    copy_tile_rows<T, D, kThreads>(args, s, hkv, 0, cached_end, INT_MAX, k_tile, v_tile);
}

// The slices' unnormalized outputs with their row max and sum, per query head.
struct Partials {
  float* o;    // [segments, heads_q, splits, D]
  float* max;  // [segments, heads_q, splits], log2 domain
  float* sum;  // [segments, heads_q, splits]
};

// Both split kernels start before the op that wrote q and the new keys ends (a chained launch,
// cuda_launch.cuh), and before waiting for it they read the segment bounds (cu_q, cu_k: a step's
// inputs, set before the step begins, never written by that op) and copy the keys before the
// segment's last nq (written by earlier steps), so that their first tile's memory latency
// overlaps that op's tail.

// Slices for `blocks_per_split` blocks each: two blocks per multiprocessor, at least a tile each.
int split_count(const AttentionArgs& args, int blocks_per_split, int multiprocessors);

// The split kernels: partials of `splits` slices, or the output where a segment uses one.
void per_head(const AttentionArgs& args, const Partials& part, int splits, cudaStream_t stream);
int per_head_splits(const AttentionArgs& args, int multiprocessors);
void per_kv_head(const AttentionArgs& args, const Partials& part, int splits, cudaStream_t stream);
int per_kv_head_splits(const AttentionArgs& args, int multiprocessors);

}  // namespace qwenvl::cuda::decode
