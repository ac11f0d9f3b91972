#pragma once
// Where key `key` of a segment lives in k and v: through the paged block table when the
// attention has one (a KV cache shared by many sequences), else in the segment's consecutive rows
// from k_start (its cu_k entry).
#include <cstdint>

#include "backend/cuda/cuda_kernels.h"

namespace qwenvl::cuda {

__device__ __forceinline__ int64_t key_row(const AttentionArgs& args, int segment, int64_t k_start,
                                           int key) {
  if (args.block_table == nullptr) return k_start + key;
  const int32_t block =
      args.block_table[int64_t(segment) * args.block_stride + key / args.block_size];
  return int64_t(block) * args.block_size + key % args.block_size;
}

}  // namespace qwenvl::cuda
