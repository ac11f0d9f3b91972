// The FP8 E4M3FN format and the packed FP8 weight (backend/packed_fp8.h): every code decodes to
// the value the OCP definition gives, encoding is the nearest code with ties to even and
// saturation (checked against an exhaustive search over the 254 finite codes), and
// quantize_fp8's per-row scales and layout.
#include "backend/packed_fp8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "cpu_test_support.h"

namespace qwenvl::test {
namespace {

// The OCP OFP8 E4M3 definition, written apart from the library's: (-1)^s · 2^(e-7) · (1 + m/8)
// for e > 0, (-1)^s · 2^-6 · (m/8) for e = 0, and S.1111.111 NaN.
double reference_value(int code) {
  const int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
  if (e == 15 && m == 7) return std::numeric_limits<double>::quiet_NaN();
  const double magnitude =
      e == 0 ? std::pow(2.0, -6) * (m / 8.0) : std::pow(2.0, e - 7) * (1.0 + m / 8.0);
  return s ? -magnitude : magnitude;
}

// The code nearest to v among the finite codes, ties to the even code (even mantissa); values
// beyond the largest finite magnitude saturate.
uint8_t reference_encode(float v) {
  if (std::isnan(v)) return 0x7F;
  const int sign = std::signbit(v) ? 0x80 : 0;
  const double a = std::fabs(double(v));
  int best = 0;
  double best_error = std::numeric_limits<double>::infinity();
  for (int c = 0; c <= 0x7E; ++c) {
    const double error = std::fabs(reference_value(c) - a);
    if (error < best_error || (error == best_error && c % 2 == 0)) best = c, best_error = error;
  }
  return uint8_t(sign | best);
}

TEST(Fp8Format, EveryCodeDecodesAsTheStandardDefinesIt) {
  for (int c = 0; c < 256; ++c) {
    SCOPED_TRACE(c);
    const double want = reference_value(c);
    const float got = e4m3_to_float(uint8_t(c));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got));
      EXPECT_TRUE(std::isnan(e4m3_table()[c]));
      continue;
    }
    EXPECT_EQ(double(got), want);
    EXPECT_EQ(got, e4m3_table()[c]);
    EXPECT_EQ(std::signbit(got), c >= 0x80);  // -0 included
  }
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(e4m3_to_float(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(e4m3_to_float(0x08), std::ldexp(1.0f, -6));  // smallest normal
}

TEST(Fp8Format, EveryFiniteCodeEncodesToItself) {
  for (int c = 0; c < 256; ++c) {
    if ((c & 0x7F) == 0x7F) continue;
    EXPECT_EQ(float_to_e4m3(e4m3_to_float(uint8_t(c))), c) << c;
  }
}

TEST(Fp8Format, RoundsToNearestEvenAndSaturates) {
  struct Case {
    float value;
    uint8_t code;
  };
  for (Case c : {Case{0.0f, 0x00}, Case{-0.0f, 0x80},
                 // Midpoints between neighbours go to the even mantissa: 1.0625 lies between 1
                 // (0x38) and 1.125 (0x39); 1.1875 between 1.125 and 1.25 (0x3A).
                 Case{1.0625f, 0x38}, Case{1.1875f, 0x3A}, Case{-1.0625f, 0xB8},
                 Case{std::nextafter(1.0625f, 2.0f), 0x39},
                 // Subnormals: steps of 2^-9; half a step is a tie to 0, and 7.5 steps to 8 steps,
                 // the smallest normal.
                 Case{std::ldexp(1.0f, -10), 0x00}, Case{std::ldexp(3.0f, -10), 0x02},
                 Case{std::ldexp(15.0f, -10), 0x08},
                 // The top binade [256, 448]: steps of 32. 432 ties 416 (0x7D) and 448 (0x7E).
                 Case{432.0f, 0x7E}, Case{440.0f, 0x7E}, Case{420.0f, 0x7D},
                 // Saturation, never NaN for a number.
                 Case{448.0f, 0x7E}, Case{449.0f, 0x7E}, Case{464.0f, 0x7E}, Case{1e6f, 0x7E},
                 Case{std::numeric_limits<float>::infinity(), 0x7E}, Case{-1e6f, 0xFE},
                 Case{-std::numeric_limits<float>::infinity(), 0xFE},
                 // Below half the smallest subnormal: zero of the value's sign.
                 Case{std::ldexp(1.0f, -12), 0x00}, Case{-std::ldexp(1.0f, -12), 0x80}}) {
    EXPECT_EQ(float_to_e4m3(c.value), c.code) << c.value;
  }
  EXPECT_EQ(float_to_e4m3(std::numeric_limits<float>::quiet_NaN()), 0x7F);
}

TEST(Fp8Format, EncodingIsTheNearestCodeForRandomAndBoundaryValues) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  std::vector<float> values;
  // Every midpoint between neighbouring codes, and the floats on either side of it.
  for (int c = 0; c < 0x7E; ++c) {
    const float mid = float((reference_value(c) + reference_value(c + 1)) / 2);
    for (float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1000.0f)})
      values.push_back(v), values.push_back(-v);
  }
  std::uniform_real_distribution<float> exponent(-14.0f, 10.0f);
  for (int i = 0; i < 20000; ++i) {
    const float v = std::exp2(exponent(rng));
    values.push_back(i % 2 ? v : -v);
  }
  int misses = 0;
  for (float v : values)
    if (float_to_e4m3(v) != reference_encode(v) && ++misses <= 5)
      ADD_FAILURE() << v << " encodes to " << int(float_to_e4m3(v)) << ", nearest is "
                    << int(reference_encode(v));
}

TEST(Fp8Weight, QuantizesEachRowWithItsOwnScale) {
  const int64_t rows = 5, k = 48;
  Tensor w = Tensor::empty({rows, k}, DType::BF16);
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < k; ++i)
      w.data<uint16_t>()[r * k + i] =
          float_to_bf16(r == 2 ? 0.0f : u(rng) * std::ldexp(1.0f, int(r) * 3 - 6));
  const Tensor q = quantize_fp8(w, "w");
  ASSERT_EQ(q.dtype(), DType::F8E4M3);
  EXPECT_TRUE(q.shape() == (Shape{rows, k / 16 + 1, 16})) << q.shape().str();
  const Fp8Layout layout = Fp8Layout::of(q);
  EXPECT_EQ(layout.rows, rows);
  EXPECT_EQ(layout.k, k);
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < rows; ++r) {
    SCOPED_TRACE(r);
    const uint8_t* record = q.data<uint8_t>() + r * layout.row_bytes();
    float amax = 0.0f;
    for (int64_t i = 0; i < k; ++i)
      amax = std::max(amax, std::fabs(bf16_to_float(w.data<uint16_t>()[r * k + i])));
    const float scale = fp8_row_scale(record, layout);
    EXPECT_EQ(scale, r == 2 ? 1.0f : amax / 448.0f);
    for (int i = 4; i < 16; ++i) EXPECT_EQ(record[k + i], 0);  // the tail's padding
    dequantize_fp8_columns(record, layout, 0, k, row.data());
    for (int64_t i = 0; i < k; ++i) {
      const float original = bf16_to_float(w.data<uint16_t>()[r * k + i]);
      EXPECT_EQ(record[i], float_to_e4m3(original / scale));
      EXPECT_EQ(row[size_t(i)], e4m3_to_float(record[i]) * scale);
      // 3 mantissa bits: within half a step, 1/16 of the value, above the subnormals.
      EXPECT_LE(std::fabs(row[size_t(i)] - original),
                std::fabs(original) / 16 + std::ldexp(scale, -10));
    }
    // The largest magnitude maps to 448 exactly.
    if (r != 2) {
      bool saw_max = false;
      for (int64_t i = 0; i < k; ++i) saw_max = saw_max || (record[i] & 0x7F) == 0x7E;
      EXPECT_TRUE(saw_max);
    }
  }
}

TEST(Fp8Weight, ColumnsMustBeMultiplesOf16) {
  EXPECT_THROW(Fp8Layout::make(4, 40, "w"), Error);
  EXPECT_THROW(Fp8Layout::make(0, 64, "w"), Error);
  EXPECT_NO_THROW(Fp8Layout::make(4, 64, "w"));
  EXPECT_THROW(quantize_fp8(Tensor::empty({2, 24}, DType::F32), "w"), Error);
  EXPECT_THROW(Fp8Layout::of(Tensor::empty({2, 16}, DType::BF16)), Error);
}

}  // namespace
}  // namespace qwenvl::test
