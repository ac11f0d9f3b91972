#pragma once
// Backend::rope_qkv's arithmetic and destinations, shared by its two kernels: the rotary pass
// (cuda_rope.cu) and the decode GEMV's rotary epilogue (cuda_gemv.cu). Angles in fp32 (accurate
// sincosf: angles reach tens of thousands of radians); the rotation rounded step by step as torch
// does it, in fp32 (the vision tower) or in the activation dtype
// (RopeSpec::round_in_activation_dtype).
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_types.cuh"

namespace qwenvl::cuda {

// The angle of frequency j for `token`: positions[pos_row[j], token] * inv_freq[j].
__device__ __forceinline__ float rope_angle(const RopeQkvArgs& a, int64_t token, int j) {
  return float(a.positions[a.pos_row[j] * a.tokens + token]) * a.inv_freq[j];
}

// Where head `head` of a token's q/k/v row goes: a query head to q's row `token`, a key head to
// k's row `row`, a value head to v's row `row`. Sets `rotate` for query and key heads.
template <typename T>
__device__ __forceinline__ T* qkv_destination(const RopeQkvArgs& a, int64_t token, int64_t row,
                                              int head, bool& rotate) {
  rotate = head < a.heads_q + a.heads_kv;
  if (head < a.heads_q) return static_cast<T*>(a.q) + (token * a.heads_q + head) * a.head_dim;
  if (rotate) return static_cast<T*>(a.k) + (row * a.heads_kv + head - a.heads_q) * a.head_dim;
  return static_cast<T*>(a.v) + (row * a.heads_kv + head - a.heads_q - a.heads_kv) * a.head_dim;
}

// The pair (x1, x2) = elements (j, j + d/2) turned by the angle whose cosine and sine are (c, s):
// (x1·c - x2·s, x2·c + x1·s) in the output dtype.
template <typename T>
__device__ __forceinline__ void rotate_pair(const RopeQkvArgs& a, float x1, float x2, float c,
                                            float s, T& out1, T& out2) {
  if (a.round_in_activation_dtype) {  // q * cos + rotate_half(q) * sin, every step rounded
    auto round = [](float f) { return to_float(from_float<T>(f)); };
    c = round(c), s = round(s);
    out1 = from_float<T>(round(x1 * c) - round(x2 * s));
    out2 = from_float<T>(round(x2 * c) + round(x1 * s));
    return;
  }
  // In fp32, each product and the sum rounded as torch's element-wise ops round them (q * cos,
  // rotate_half(q) * sin, their sum): a fused multiply-add would round once less.
  out1 = from_float<T>(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)));
  out2 = from_float<T>(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
}

}  // namespace qwenvl::cuda
