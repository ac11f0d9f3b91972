#pragma once
// The packed 4-bit weight every backend reads (DType::Q4): a matrix w [rows, k] of integers
// q in [0, 15] with, per group of `group` consecutive columns of a row, an fp16 scale s and an
// integer zero point z; the weight's value is (q - z) * s, AWQ's formula (awq/quantize/quantizer.py
// pseudo_quantize_tensor), computed in fp32, where it is exact.
//
// Layout: one self-contained record per output row, so that row blocks stack (q/k/v and gate/up
// are one weight) and slice (Tensor::rows) like any other weight:
//   k/2 bytes        the row's values, byte i holding column 2i in its low nibble and 2i+1 in
//                    its high one;
//   k/group × 4 bytes per group, its scale then its zero point, both fp16 (so one 4-byte load
//                    brings both; integers 0..15 are exact in fp16).
// The tensor's shape is [rows, k/group, group/2 + 4] bytes: the row's bytes, and k and group
// with them. With group 128 a row is 68 bytes a group: rows start 16-byte aligned for k/group a
// multiple of 4, and 8-byte aligned for an even k/group (the 3B's down projection: 86 groups).
#include <cstdint>

#include "core/tensor.h"

namespace qwenvl {

struct Int4Layout {
  int64_t rows = 0, k = 0, group = 0;

  // The layout of a Q4 tensor; Error (internal) when `w` is not one.
  static Int4Layout of(const Tensor& w);
  // Checks k and group (group even and dividing k); Error naming `what` otherwise.
  static Int4Layout make(int64_t rows, int64_t k, int64_t group, const char* what);

  int64_t groups() const { return k / group; }
  int64_t value_bytes() const { return k / 2; }
  int64_t row_bytes() const { return k / 2 + 4 * groups(); }
  Shape shape() const { return {rows, groups(), group / 2 + 4}; }
};

// The fp32 values of groups [first_group, first_group + count) of one row record (`row` points
// at its first byte): count × group values.
void dequantize_int4_groups(const uint8_t* row, const Int4Layout& layout, int64_t first_group,
                            int64_t count, float* out);
inline void dequantize_int4_row(const uint8_t* row, const Int4Layout& layout, float* out) {
  dequantize_int4_groups(row, layout, 0, layout.groups(), out);
}

// Packs rows from unpacked values: q [rows, k] and zeros [rows, k/group] in [0, 15], scales
// [rows, k/group] as fp16 bits. Returns a host Q4 tensor.
Tensor pack_int4(const uint8_t* q, const uint8_t* zeros, const uint16_t* scales,
                 const Int4Layout& layout);

}  // namespace qwenvl
