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

// Eight codes as fp32 values code / 256 (see the header). The NaN codes, which quantize_fp8 never
// writes, read as ±480.
QWENVL_AVX2 inline __m256 decode8(const uint8_t* p) {
  const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m128i sign = _mm_and_si128(_mm_slli_epi16(b, 8), _mm_set1_epi16(short(0x8000)));
  const __m128i rest = _mm_and_si128(_mm_slli_epi16(b, 7), _mm_set1_epi16(0x3F80));
  return _mm256_cvtph_ps(_mm_or_si128(sign, rest));
}

template <int M>
QWENVL_AVX2 void rows_dot_avx2(const float* x, int64_t ldx, const uint8_t* row,
                               const Fp8Layout& layout, float* out) {
  __m256 acc[M];
  for (int r = 0; r < M; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t i = 0; i < layout.k; i += 16) {  // k is a multiple of 16
    const __m256 lo = decode8(row + i), hi = decode8(row + i + 8);
    for (int r = 0; r < M; ++r) {
      acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + i), lo, acc[r]);
      acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + i + 8), hi, acc[r]);
    }
  }
  const float scale = fp8_row_scale(row, layout) * 256.0f;
  for (int r = 0; r < M; ++r) out[r] = hsum(acc[r]) * scale;
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
