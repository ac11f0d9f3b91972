#pragma once
// The decode-sized inner loop of linear with packed 4-bit weights (cpu_linear_int4.cpp): up to
// four input rows against one packed row, the values decoded once for all of them. The AVX2
// version is picked at run time (active_cpu_isa(), AVX-512 CPUs included); the scalar one
// otherwise.
#include <cstdint>

#include "backend/packed_int4.h"

namespace qwenvl {

// x's row in the order int4_rows_dot reads it: the even columns, then the odd ones (byte i of a
// packed row holds columns 2i and 2i + 1).
void split_even_odd(const float* x, int64_t k, float* out);

// out[r] = Σ_j x[r][j] · w[j] for r < m (1 <= m <= 4) over the packed row `row` (layout's k
// columns), x's rows split_even_odd, ldx apart. Each group's sum is scaled once: fp32 sums.
void int4_rows_dot(const float* x, int64_t ldx, int m, const uint8_t* row, const Int4Layout& layout,
                   float* out);

}  // namespace qwenvl
