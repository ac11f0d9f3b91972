#pragma once
// The decode-sized inner loop of linear with FP8 weights (cpu_linear_fp8.cpp): up to four input
// rows against one FP8 row, each code decoded once for all of them. The AVX2 version (picked at
// run time, AVX-512 CPUs included) decodes eight codes with one F16C conversion: a code's bits
// moved into an fp16's sign, exponent and mantissa fields are the fp16 value code / 256 (normal
// and subnormal alike, the two formats differing only in exponent bias and width), so the row's
// scale times 256 multiplies the sum once. The scalar version reads the exact 256-entry table.
#include <cstdint>

#include "backend/packed_fp8.h"

namespace qwenvl {

// out[r] = Σ_j x[r][j] · w[j] for r < m (1 <= m <= 4) over the FP8 row record `row`, x's rows ldx
// apart; fp32 sums, the row's scale applied to each sum.
void fp8_rows_dot(const float* x, int64_t ldx, int m, const uint8_t* row, const Fp8Layout& layout,
                  float* out);

}  // namespace qwenvl
