// linear with an FP8 weight (backend/packed_fp8.h), the weight decoded inside the product, never
// whole. Two regimes, as the float weights (cpu_linear.cpp): few input rows stream each FP8 row
// once through fp8_rows_dot (codes decoded in registers, fp32 sums); many rows dequantize
// kPanelN × kPanelK panels into each thread's scratch for OpenBLAS sgemm.
#include <cblas.h>

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_fp8_dot.h"
#include "backend/packed_fp8.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

constexpr int64_t kSmallBatchRows = 8;  // as cpu_linear.cpp
constexpr int64_t kPanelN = 128;
constexpr int64_t kPanelK = 512;

}  // namespace

void CpuBackend::linear_fp8(const float* x, int64_t m, const Tensor& w, float* out) {
  const Fp8Layout layout = Fp8Layout::of(w);
  const int64_t n = layout.rows, k = layout.k;
  const auto* bytes = w.data<uint8_t>();
  const size_t row_bytes = size_t(layout.row_bytes());
  ThreadPool& pool = ThreadPool::global();

  if (m <= kSmallBatchRows) {
    pool.parallel_for(n, 16, [&](int64_t begin, int64_t end) {
      float dots[4];
      for (int64_t j = begin; j < end; ++j)
        for (int64_t r0 = 0; r0 < m; r0 += 4) {
          const int rows = int(std::min<int64_t>(4, m - r0));
          fp8_rows_dot(x + r0 * k, k, rows, bytes + size_t(j) * row_bytes, layout, dots);
          for (int r = 0; r < rows; ++r) out[(r0 + r) * n + j] = dots[r];
        }
    });
    return;
  }

  const int64_t panels = (n + kPanelN - 1) / kPanelN;
  const int threads = int(std::min<int64_t>(pool.size(), panels));
  float* scratch = thread_scratch(threads, size_t(kPanelN * kPanelK));
  pool.parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    for (int64_t t = t_begin; t < t_end; ++t) {
      float* panel = scratch + t * kPanelN * kPanelK;
      for (int64_t p = panels * t / threads; p < panels * (t + 1) / threads; ++p) {
        const int64_t n0 = p * kPanelN, nb = std::min(kPanelN, n - n0);
        for (int64_t k0 = 0; k0 < k; k0 += kPanelK) {
          const int64_t kb = std::min(kPanelK, k - k0);
          for (int64_t j = 0; j < nb; ++j)
            dequantize_fp8_columns(bytes + size_t(n0 + j) * row_bytes, layout, k0, kb,
                                   panel + j * kb);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(nb), int(kb), 1.0f,
                      x + k0, int(k), panel, int(kb), k0 == 0 ? 0.0f : 1.0f, out + n0, int(n));
        }
      }
    }
  });
}

}  // namespace qwenvl
