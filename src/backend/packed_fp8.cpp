#include "backend/packed_fp8.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"

namespace qwenvl {

Fp8Layout Fp8Layout::make(int64_t rows, int64_t k, const char* what) {
  if (rows <= 0 || k <= 0 || k % 16 != 0)
    fail(what, ": an FP8 weight of ", rows, " rows and ", k,
         " columns is not supported (the columns must be a positive multiple of 16)");
  return Fp8Layout{rows, k};
}

Fp8Layout Fp8Layout::of(const Tensor& w) {
  if (w.dtype() != DType::F8E4M3 || w.rank() != 3 || w.dim(1) < 2 || w.dim(2) != 16)
    fail_internal("an FP8 weight must be f8e4m3 [rows, k/16 + 1, 16], found ",
                  dtype_name(w.dtype()), " ", w.shape().str());
  return Fp8Layout{w.dim(0), (w.dim(1) - 1) * 16};
}

namespace {

// Decodes by the format's definition: exponent field e and mantissa m give
// (1 + m/8) · 2^(e-7) for e > 0 and (m/8) · 2^-6 for e = 0; S.1111.111 is NaN.
float decode(uint8_t code) {
  const int e = (code >> 3) & 15, m = code & 7;
  float v;
  if (e == 15 && m == 7)
    v = std::numeric_limits<float>::quiet_NaN();
  else if (e == 0)
    v = std::ldexp(float(m), -9);
  else
    v = std::ldexp(float(8 + m), e - 10);
  return code & 0x80 ? -v : v;
}

const std::array<float, 256>& table() {
  static const std::array<float, 256> values = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) t[size_t(c)] = decode(uint8_t(c));
    return t;
  }();
  return values;
}

// Row r of w [rows, k] (f32, bf16 or f16) as floats.
void row_as_float(const Tensor& w, int64_t r, int64_t k, float* out) {
  const int64_t first = r * k;
  switch (w.dtype()) {
    case DType::BF16:
      for (int64_t i = 0; i < k; ++i) {
        const uint32_t bits = uint32_t(w.data<uint16_t>()[first + i]) << 16;
        std::memcpy(out + i, &bits, sizeof bits);
      }
      return;
    case DType::F16:
      for (int64_t i = 0; i < k; ++i) out[i] = fp16_to_float(w.data<uint16_t>()[first + i]);
      return;
    default:
      std::memcpy(out, w.data<float>() + first, size_t(k) * sizeof(float));
  }
}

}  // namespace

float e4m3_to_float(uint8_t code) { return table()[code]; }

const float* e4m3_table() { return table().data(); }

// Bit operations rather than frexp / nearbyint: quantizing a 7B model's projections encodes
// billions of values while it loads.
uint8_t float_to_e4m3(float value) {
  if (std::isnan(value)) return 0x7F;
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint8_t sign = uint8_t(bits >> 24 & 0x80);
  bits &= 0x7FFFFFFFu;
  float a;
  std::memcpy(&a, &bits, sizeof a);
  if (a >= kE4m3Max) return sign | 0x7E;
  // Below the smallest normal (2^-6) the step is 2^-9: the code is the count of steps (a count
  // of 8 is the smallest normal's code). Adding 2^23 rounds a · 2^9 < 8 to an integer, ties to
  // even, in the float's last bits.
  if (a < 0x1p-6f) {
    const float rounded = a * 0x1p9f + 0x1p23f;
    uint32_t r;
    std::memcpy(&r, &rounded, sizeof r);
    return sign | uint8_t(r - 0x4B000000u);
  }
  // A normal fp32 keeps its exponent and the top 3 of its 23 mantissa bits, rounded to nearest
  // even on the 20 dropped (a carry into the exponent is the next binade's first code); then
  // the exponent's bias goes from 127 to 7.
  bits += 0x7FFFFu + (bits >> 20 & 1);
  const uint32_t code = (bits >> 20) - ((127 - 7) << 3);
  return sign | uint8_t(code > 0x7E ? 0x7E : code);
}

float fp8_row_scale(const uint8_t* row, const Fp8Layout& layout) {
  float scale;
  std::memcpy(&scale, row + layout.k, sizeof scale);
  return scale;
}

void dequantize_fp8_columns(const uint8_t* row, const Fp8Layout& layout, int64_t first,
                            int64_t count, float* out) {
  const float scale = fp8_row_scale(row, layout);
  const float* values = e4m3_table();
  for (int64_t i = 0; i < count; ++i) out[i] = values[row[first + i]] * scale;
}

Tensor quantize_fp8(const Tensor& w, const char* what) {
  if (w.rank() != 2 || !is_float(w.dtype()))
    fail_internal(what, ": FP8 quantization takes a float matrix, not ", dtype_name(w.dtype()), " ",
                  w.shape().str());
  const Fp8Layout layout = Fp8Layout::make(w.dim(0), w.dim(1), what);
  Tensor out = Tensor::empty(layout.shape(), DType::F8E4M3);
  const int64_t k = layout.k;
  ThreadPool::global().parallel_for(layout.rows, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> values(static_cast<size_t>(k));
    for (int64_t r = begin; r < end; ++r) {
      row_as_float(w, r, k, values.data());
      float amax = 0.0f;
      for (float v : values) {
        const float a = std::fabs(v);
        amax = a > amax ? a : amax;
      }
      // An all-zero row (or one whose scale would underflow) keeps scale 1: its codes are zeros.
      const float scale = amax / kE4m3Max > 0.0f ? amax / kE4m3Max : 1.0f;
      uint8_t* row = out.data<uint8_t>() + r * layout.row_bytes();
      for (int64_t i = 0; i < k; ++i) row[i] = float_to_e4m3(values[size_t(i)] / scale);
      std::memset(row + k, 0, Fp8Layout::kTailBytes);
      std::memcpy(row + k, &scale, sizeof scale);
    }
  });
  return out;
}

}  // namespace qwenvl
