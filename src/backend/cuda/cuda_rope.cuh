#pragma once
// Backend::rope_qkv's arithmetic and destinations, shared by its two kernels: the rotary pass
// (cuda_rope.cu) and the decode GEMV's rotary epilogue (cuda_gemv.cu). Angles and rotation in
// fp32 (accurate sincosf: angles reach tens of thousands of radians), one rounding at the end.
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_types.cuh"

namespace qwenvl::cuda {

// The angle of frequency j for `token`: positions[pos_row[j], token] * inv_freq[j].
__device__ __forceinline__ float rope_angle(const RopeQkvArgs& a, int64_t token, int j) {
  return float(a.positions[a.pos_row[j] * a.tokens + token]) * a.inv_freq[j];
}

// Elements (j, j + d/2) of head `head` of a token's q/k/v row, (x1, x2): a query head rotated by
// (c, s) into q's row `token`, a key head rotated into k's row `row`, a value head as it is into
// v's row `row`.
template <typename T>
__device__ __forceinline__ void store_qkv_pair(const RopeQkvArgs& a, int64_t token, int64_t row,
                                               int head, int j, float x1, float x2, float c,
                                               float s) {
  const int half = a.head_dim / 2;
  if (head >= a.heads_q + a.heads_kv) {
    T* dst = static_cast<T*>(a.v) + (row * a.heads_kv + head - a.heads_q - a.heads_kv) * a.head_dim;
    dst[j] = from_float<T>(x1);
    dst[j + half] = from_float<T>(x2);
    return;
  }
  T* dst = head < a.heads_q
               ? static_cast<T*>(a.q) + (token * a.heads_q + head) * a.head_dim
               : static_cast<T*>(a.k) + (row * a.heads_kv + head - a.heads_q) * a.head_dim;
  dst[j] = from_float<T>(x1 * c - x2 * s);
  dst[j + half] = from_float<T>(x2 * c + x1 * s);
}

}  // namespace qwenvl::cuda
