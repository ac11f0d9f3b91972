// Portable kernels: the fallback on CPUs without AVX2, and the plainest statement of what the
// vector versions compute.
#include <algorithm>

#include "backend/cpu/cpu_kernels.h"
#include "core/half.h"

namespace qwenvl {

namespace {

// Four partial sums, like the vector kernels, so the three versions round alike.
template <typename Load>
float dot_generic(const float* x, int64_t n, Load load) {
  float s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int l = 0; l < 4; ++l) s[l] += x[i + l] * load(i + l);
  for (; i < n; ++i) s[0] += x[i] * load(i);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

float dot_f32(const float* x, const float* w, int64_t n) {
  return dot_generic(x, n, [w](int64_t i) { return w[i]; });
}
template <typename W, float (*Load)(W)>
void rows_dot(const float* x, int64_t ldx, int m, const W* w, int64_t n, float* out) {
  for (int r = 0; r < m; ++r)
    out[r] = dot_generic(x + r * ldx, n, [w](int64_t i) { return Load(w[i]); });
}
float identity(float v) { return v; }
void permute_for_bf16(const float* x, int64_t n, float* out) {  // scalar: natural order
  std::copy(x, x + n, out);
}
void axpy_f32(float* y, float a, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
void bf16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
}
void f16_to_f32(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_float(src[i]);
}

}  // namespace

const CpuKernels& scalar_kernels() {
  static const CpuKernels k{dot_f32,
                            rows_dot<uint16_t, bf16_to_float>,
                            rows_dot<uint16_t, fp16_to_float>,
                            rows_dot<float, identity>,
                            permute_for_bf16,
                            axpy_f32,
                            bf16_to_f32,
                            f16_to_f32};
  return k;
}

const CpuKernels& cpu_kernels_for(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512:
      return avx512_kernels();
    case CpuIsa::Avx2:
      return avx2_kernels();
    case CpuIsa::Scalar:
      break;
  }
  return scalar_kernels();
}

}  // namespace qwenvl
