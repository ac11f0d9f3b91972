#include "backend/cpu/cpu_int4_dot.h"

#include <immintrin.h>

#include <cstring>

#include "backend/cpu/cpu_features.h"
#include "core/half.h"

#define QWENVL_AVX2 __attribute__((target("avx2,fma")))

namespace qwenvl {

namespace {

// The group's fp16 (scale, zero) pair.
void group_params(const uint8_t* row, const Int4Layout& layout, int64_t g, float& scale,
                  float& zero) {
  uint16_t bits[2];
  std::memcpy(bits, row + layout.value_bytes() + 4 * g, sizeof bits);
  scale = fp16_to_float(bits[0]);
  zero = fp16_to_float(bits[1]);
}

template <int M>
void rows_dot_scalar(const float* x, int64_t ldx, const uint8_t* row, const Int4Layout& layout,
                     float* out) {
  const int64_t half = layout.k / 2, half_group = layout.group / 2;
  float total[M] = {};
  for (int64_t g = 0; g < layout.groups(); ++g) {
    float scale, zero;
    group_params(row, layout, g, scale, zero);
    float sum[M] = {};
    for (int64_t i = g * half_group; i < (g + 1) * half_group; ++i) {
      const float lo = float(row[i] & 15) - zero, hi = float(row[i] >> 4) - zero;
      for (int r = 0; r < M; ++r) sum[r] += x[r * ldx + i] * lo + x[r * ldx + half + i] * hi;
    }
    for (int r = 0; r < M; ++r) total[r] += scale * sum[r];
  }
  for (int r = 0; r < M; ++r) out[r] = total[r];
}

QWENVL_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Eight bytes at a time: their low nibbles (even columns) and high nibbles (odd columns) as two
// vectors of q - z, multiplied with the matching halves of x.
template <int M>
QWENVL_AVX2 void rows_dot_avx2(const float* x, int64_t ldx, const uint8_t* row,
                               const Int4Layout& layout, float* out) {
  const int64_t half = layout.k / 2, half_group = layout.group / 2;
  const __m256i mask = _mm256_set1_epi32(15);
  __m256 total[M];
  float tail[M];
  for (int r = 0; r < M; ++r) total[r] = _mm256_setzero_ps(), tail[r] = 0.0f;
  for (int64_t g = 0; g < layout.groups(); ++g) {
    float scale, zero;
    group_params(row, layout, g, scale, zero);
    const __m256 z = _mm256_set1_ps(zero);
    __m256 acc[M];
    for (int r = 0; r < M; ++r) acc[r] = _mm256_setzero_ps();
    const int64_t end = (g + 1) * half_group;
    int64_t i = g * half_group;
    for (; i + 8 <= end; i += 8) {
      const __m256i w =
          _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + i)));
      const __m256 lo = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_and_si256(w, mask)), z);
      const __m256 hi = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(w, 4)), z);
      for (int r = 0; r < M; ++r) {
        acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + i), lo, acc[r]);
        acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(x + r * ldx + half + i), hi, acc[r]);
      }
    }
    const __m256 s = _mm256_set1_ps(scale);
    for (int r = 0; r < M; ++r) {
      float rest = 0.0f;
      for (int64_t j = i; j < end; ++j)
        rest += x[r * ldx + j] * (float(row[j] & 15) - zero) +
                x[r * ldx + half + j] * (float(row[j] >> 4) - zero);
      total[r] = _mm256_fmadd_ps(s, acc[r], total[r]);
      tail[r] += scale * rest;
    }
  }
  for (int r = 0; r < M; ++r) out[r] = hsum(total[r]) + tail[r];
}

}  // namespace

void split_even_odd(const float* x, int64_t k, float* out) {
  for (int64_t i = 0; i < k / 2; ++i) {
    out[i] = x[2 * i];
    out[k / 2 + i] = x[2 * i + 1];
  }
}

void int4_rows_dot(const float* x, int64_t ldx, int m, const uint8_t* row, const Int4Layout& layout,
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
