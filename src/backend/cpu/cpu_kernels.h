#pragma once
// The inner loops that decide the CPU backend's speed, one table per instruction set
// (cpu_kernels_scalar.cpp, cpu_kernels_avx2.cpp, cpu_kernels_avx512.cpp). The ops call them
// through cpu_kernels(), which follows active_cpu_isa().
//
// Every kernel takes raw pointers and a length and works for any length (vector body plus a
// scalar tail). Sums are accumulated in fp32 in several partial sums, so results differ from a
// sequential sum by rounding only.
#include <cstdint>

#include "backend/cpu/cpu_features.h"

namespace qwenvl {

struct CpuKernels {
  // sum_i x[i] * w[i] in fp32.
  float (*dot_f32)(const float* x, const float* w, int64_t n);
  // out[r] = sum_i x[r * ldx + i] * w[i] for r < m (1 <= m <= 4): up to four input rows against
  // one weight row, the weight converted to fp32 in registers once for all of them.
  // The bf16 version reads x in the order permute_for_bf16 wrote it (see there).
  void (*rows_dot_bf16)(const float* x, int64_t ldx, int m, const uint16_t* w, int64_t n,
                        float* out);
  void (*rows_dot_f16)(const float* x, int64_t ldx, int m, const uint16_t* w, int64_t n,
                       float* out);
  void (*rows_dot_f32)(const float* x, int64_t ldx, int m, const float* w, int64_t n, float* out);
  // Reorders an input row for rows_dot_bf16: within each block of 2V elements (V = vector
  // lanes) the even-indexed ones first, then the odd ones; the tail keeps its order. A vector
  // load of 2V bf16 then widens into (evens, odds) with one shift and one mask, no shuffles.
  void (*permute_for_bf16)(const float* x, int64_t n, float* out);
  // y[i] += a * x[i]
  void (*axpy_f32)(float* y, float a, const float* x, int64_t n);
  // Exact widening conversions (bf16 and fp16 values are all representable in fp32).
  void (*bf16_to_f32)(const uint16_t* src, float* dst, int64_t n);
  void (*f16_to_f32)(const uint16_t* src, float* dst, int64_t n);
};

const CpuKernels& cpu_kernels_for(CpuIsa isa);
inline const CpuKernels& cpu_kernels() { return cpu_kernels_for(active_cpu_isa()); }

// Defined in the per-instruction-set files.
const CpuKernels& scalar_kernels();
const CpuKernels& avx2_kernels();
const CpuKernels& avx512_kernels();

}  // namespace qwenvl
