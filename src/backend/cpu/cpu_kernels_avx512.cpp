// AVX-512 (F + BW + VL) kernels for the GPU host's Xeon and recent AMD CPUs: the structure of
// cpu_kernels_avx2.cpp with 16 lanes. Compiled with target attributes, picked at run time.
#include <immintrin.h>

// GCC 12's AVX-512 intrinsic headers initialise vectors from themselves (_mm512_undefined_*),
// which its own -Wuninitialized then reports at every use; the values are never read.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "backend/cpu/cpu_kernels.h"
#include "core/half.h"

#define QWENVL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

namespace qwenvl {

namespace {

constexpr int kLanes = 16;

QWENVL_AVX512 inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// Loaders of 2 × 16 weights as two fp32 vectors, in the order x is laid out for them.
struct Bf16Pairs {  // x permuted: evens then odds (a bf16 is the top half of an fp32)
  QWENVL_AVX512 static void load(const uint16_t* p, __m512& a, __m512& b) {
    const __m512i v = _mm512_loadu_si512(p);
    a = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    b = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
  }
  static float scalar(uint16_t v) { return bf16_to_float(v); }
};
struct F16Halves {
  QWENVL_AVX512 static void load(const uint16_t* p, __m512& a, __m512& b) {
    a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + kLanes)));
  }
  static float scalar(uint16_t v) { return fp16_to_float(v); }
};
struct F32Halves {
  QWENVL_AVX512 static void load(const float* p, __m512& a, __m512& b) {
    a = _mm512_loadu_ps(p);
    b = _mm512_loadu_ps(p + kLanes);
  }
  static float scalar(float v) { return v; }
};

// M input rows against one weight row; U blocks of 32 per iteration keep 2·U independent
// accumulators per row in flight (more for one row, where FMA latency would otherwise bind).
template <int M, typename Load, typename W>
QWENVL_AVX512 inline void rows_dot_m(const float* x, int64_t ldx, const W* w, int64_t n,
                                     float* out) {
  constexpr int U = M <= 2 ? 2 : 1;
  constexpr int64_t kBlock = 2 * kLanes;
  __m512 acc[M][2 * U];
  for (int r = 0; r < M; ++r)
    for (int a = 0; a < 2 * U; ++a) acc[r][a] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + U * kBlock <= n; i += U * kBlock)
    for (int u = 0; u < U; ++u) {
      __m512 w0, w1;
      Load::load(w + i + u * kBlock, w0, w1);
      for (int r = 0; r < M; ++r) {
        const float* xr = x + r * ldx + i + u * kBlock;
        acc[r][2 * u] = _mm512_fmadd_ps(_mm512_loadu_ps(xr), w0, acc[r][2 * u]);
        acc[r][2 * u + 1] = _mm512_fmadd_ps(_mm512_loadu_ps(xr + kLanes), w1, acc[r][2 * u + 1]);
      }
    }
  for (; i + kBlock <= n; i += kBlock) {
    __m512 w0, w1;
    Load::load(w + i, w0, w1);
    for (int r = 0; r < M; ++r) {
      const float* xr = x + r * ldx + i;
      acc[r][0] = _mm512_fmadd_ps(_mm512_loadu_ps(xr), w0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(_mm512_loadu_ps(xr + kLanes), w1, acc[r][1]);
    }
  }
  for (int r = 0; r < M; ++r) {
    __m512 sum = acc[r][0];
    for (int a = 1; a < 2 * U; ++a) sum = _mm512_add_ps(sum, acc[r][a]);
    float s = hsum(sum);
    for (int64_t t = i; t < n; ++t) s += x[r * ldx + t] * Load::scalar(w[t]);
    out[r] = s;
  }
}

template <typename Load, typename W>
QWENVL_AVX512 void rows_dot(const float* x, int64_t ldx, int m, const W* w, int64_t n, float* out) {
  switch (m) {
    case 1:
      rows_dot_m<1, Load>(x, ldx, w, n, out);
      break;
    case 2:
      rows_dot_m<2, Load>(x, ldx, w, n, out);
      break;
    case 3:
      rows_dot_m<3, Load>(x, ldx, w, n, out);
      break;
    default:
      rows_dot_m<4, Load>(x, ldx, w, n, out);
      break;
  }
}

QWENVL_AVX512 float dot_f32(const float* x, const float* w, int64_t n) {
  float out;
  rows_dot_m<1, F32Halves>(x, 0, w, n, &out);
  return out;
}

void permute_for_bf16(const float* x, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes)
    for (int l = 0; l < kLanes; ++l) {
      out[i + l] = x[i + 2 * l];
      out[i + kLanes + l] = x[i + 2 * l + 1];
    }
  for (; i < n; ++i) out[i] = x[i];
}

QWENVL_AVX512 void axpy_f32(float* y, float a, const float* x, int64_t n) {
  const __m512 va = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

QWENVL_AVX512 void bf16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)));
  }
  for (; i < n; ++i) dst[i] = bf16_to_float(src[i]);
}

QWENVL_AVX512 void f16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    _mm512_storeu_ps(
        dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  for (; i < n; ++i) dst[i] = fp16_to_float(src[i]);
}

}  // namespace

const CpuKernels& avx512_kernels() {
  static const CpuKernels k{dot_f32,
                            rows_dot<Bf16Pairs, uint16_t>,
                            rows_dot<F16Halves, uint16_t>,
                            rows_dot<F32Halves, float>,
                            permute_for_bf16,
                            axpy_f32,
                            bf16_to_f32,
                            f16_to_f32};
  return k;
}

}  // namespace qwenvl
