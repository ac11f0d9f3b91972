#include "backend/cpu/cpu_fp8_dot.h"

#include <immintrin.h>

#include "backend/cpu/cpu_features.h"

#define QWENVL_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace qwenvl {

namespace {

template <int M>
void rows_dot_scalar(const float* x, int64_t ldx, const uint8_t* row, const Fp8Layout& layout,
                     float* out) {
  const float* values = e4m3_table();
  float sum[M] = {};
  for (int64_t i = 0; i < layout.k; ++i) {
    const float w = values[row[i]];
    for (int r = 0; r < M; ++r) sum[r] += x[r * ldx + i] * w;
  }
  const float scale = fp8_row_scale(row, layout);
  for (int r = 0; r < M; ++r) out[r] = sum[r] * scale;
}

QWENVL_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Sixteen codes as fp32 values code / 256 (see the header): each code in the high byte of a
// 16-bit lane, shifted right arithmetically by one, is the fp16 sign, then a copy of it (cleared),
// then the exponent and mantissa fields. The NaN codes, which quantize_fp8 never writes, read as
// ±480.
QWENVL_AVX2 inline void decode16(const uint8_t* p, __m256& lo, __m256& hi) {
  const __m256i codes = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i h = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(codes, 8), 1),
                                     _mm256_set1_epi16(short(0xBF80)));
  lo = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
  hi = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
}

// Two accumulators per input row (the even and odd eight-column halves), so consecutive FMAs do
// not wait on each other.
template <int M>
QWENVL_AVX2 void rows_dot_avx2(const float* x, int64_t ldx, const uint8_t* row,
                               const Fp8Layout& layout, float* out) {
  __m256 acc_lo[M], acc_hi[M];
  for (int r = 0; r < M; ++r) acc_lo[r] = acc_hi[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < layout.k; i += 16) {  // k is a multiple of 16
    __m256 lo, hi;
    decode16(row + i, lo, hi);
    for (int r = 0; r < M; ++r) {
      acc_lo[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + i), lo, acc_lo[r]);
      acc_hi[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + i + 8), hi, acc_hi[r]);
    }
  }
  const float scale = fp8_row_scale(row, layout) * 256.0f;
  for (int r = 0; r < M; ++r) out[r] = hsum(_mm256_add_ps(acc_lo[r], acc_hi[r])) * scale;
}

}  // namespace

void fp8_rows_dot(const float* x, int64_t ldx, int m, const uint8_t* row, const Fp8Layout& layout,
                  float* out) {
  const bool avx2 = int(active_cpu_isa()) >= int(CpuIsa::Avx2);
  switch (m) {
    case 1:
      return avx2 ? rows_dot_avx2<1>(x, ldx, row, layout, out)
                  : rows_dot_scalar<1>(x, ldx, row, layout, out);
    case 2:
      return avx2 ? rows_dot_avx2<2>(x, ldx, row, layout, out)
                  : rows_dot_scalar<2>(x, ldx, row, layout, out);
    case 3:
      return avx2 ? rows_dot_avx2<3>(x, ldx, row, layout, out)
                  : rows_dot_scalar<3>(x, ldx, row, layout, out);
    default:
      return avx2 ? rows_dot_avx2<4>(x, ldx, row, layout, out)
                  : rows_dot_scalar<4>(x, ldx, row, layout, out);
  }
}

}  // namespace qwenvl
