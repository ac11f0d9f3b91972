#pragma once
// The FP8 weight every backend reads (DType::F8E4M3): a matrix w [rows, k] as OCP FP8 E4M3FN
// codes (a sign, 4 exponent bits of bias 7, 3 mantissa bits; no infinities, 0x7F and 0xFF NaN,
// largest finite 448) with one fp32 scale per output row: w[r][i] = decode(code) · scale[r].
// quantize_fp8 takes scale = amax(row) / 448 (1 for an all-zero row), then each code is w / scale
// rounded to nearest even and saturated at ±448, as torch's `.to(torch.float8_e4m3fn)` after
// clamping does.
//
// Layout: one self-contained record per output row, so that row blocks stack (q/k/v and gate/up
// are one weight) and slice (Tensor::rows) like any other weight:
//   k bytes    the row's codes, column i in byte i;
//   16 bytes   its scale (fp32), then 12 zero bytes: rows are whole 16-byte chunks, so GPU rows
//              start 16-byte aligned and a GEMV reads them with 16-byte loads.
// The tensor's shape is [rows, k/16 + 1, 16] bytes; k must be a multiple of 16 (every width of
// Qwen2.5-VL's decoder is).
#include <cstdint>

#include "core/tensor.h"

namespace qwenvl {

struct Fp8Layout {
  int64_t rows = 0, k = 0;

  // The layout of an F8E4M3 tensor; Error (internal) when `w` is not one.
  static Fp8Layout of(const Tensor& w);
  // Checks k (a positive multiple of 16); Error naming `what` otherwise.
  static Fp8Layout make(int64_t rows, int64_t k, const char* what);

  static constexpr int64_t kTailBytes = 16;  // the scale and its padding
  int64_t row_bytes() const { return k + kTailBytes; }
  Shape shape() const { return {rows, k / 16 + 1, 16}; }
};

constexpr float kE4m3Max = 448.0f;

// The value of an E4M3FN code: exact (every code is an fp32), NaN for 0x7F and 0xFF.
float e4m3_to_float(uint8_t code);
// The 256 values by code (e4m3_to_float's table).
const float* e4m3_table();
// The nearest E4M3FN code, ties to even; beyond ±448 the largest finite code of that sign
// (saturation, never NaN for a number); NaN in, 0x7F out.
uint8_t float_to_e4m3(float value);

// The scale of one row record (`row` points at its first byte).
float fp8_row_scale(const uint8_t* row, const Fp8Layout& layout);
// The fp32 values of columns [first, first + count) of one row record.
void dequantize_fp8_columns(const uint8_t* row, const Fp8Layout& layout, int64_t first,
                            int64_t count, float* out);

// w [rows, k] (f32, bf16 or f16, on the host) quantized row by row as above. Returns a host
// F8E4M3 tensor; Error naming `what` when k is not a multiple of 16.
Tensor quantize_fp8(const Tensor& w, const char* what);

}  // namespace qwenvl
