#pragma once
// AutoAWQ's GEMM storage of a 4-bit linear layer (awq/modules/linear/gemm.py, WQLinear_GEMM) and
// its unpacked form. For in_features K, out_features N and group size G:
//   qweight I32 [K, N/8]    column c of int32 j holds output n = 8j + kAwqOrder[i] of input k in
//   qzeros  I32 [K/G, N/8]  bits [4i, 4i + 4) (the same packing for the zero points);
//   scales  F16 [K/G, N]
// and the weight w[n, k] = (q - z) * s with q, z, s of k's group (pseudo_quantize_tensor).
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace qwenvl {

// AutoAWQ's AWQ_ORDER: the output a nibble of a packed int32 holds, nibble by nibble.
inline constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// A quantized weight unpacked, output-major as a linear layer's weight [N, K] is.
struct Int4Values {
  int64_t rows = 0, k = 0, group = 0;  // rows = N
  std::vector<uint8_t> q;              // [rows, k], each 0..15
  std::vector<uint8_t> zeros;          // [rows, k/group], each 0..15
  std::vector<uint16_t> scales;        // [rows, k/group], fp16 bits
};

struct AwqTensors {
  Tensor qweight, qzeros, scales;
};

// The values AWQ's tensors hold (shapes as above, checked; `name` for messages).
Int4Values unpack_awq(const AwqTensors& awq, int64_t group, const std::string& name);
// AWQ's tensors for the values.
AwqTensors pack_awq(const Int4Values& values);
// Round-to-nearest 4-bit quantization with zero points, per group of `group` inputs of each
// output row of w [N, K] (any float dtype): pseudo_quantize_tensor without AWQ's activation-aware
// scaling search (for random weights, which have no salient channels).
Int4Values quantize_round_to_nearest(const Tensor& w, int64_t group);
// The first `rows` outputs over the first `k` inputs (k a multiple of the group): a weight with
// its zero padding dropped.
Int4Values leading_block(const Int4Values& values, int64_t rows, int64_t k);
// The f32 weight [N, K] the values stand for: (q - z) * s.
Tensor dequantize(const Int4Values& values);

}  // namespace qwenvl
