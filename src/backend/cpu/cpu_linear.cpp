// linear: out[M,N] = x[M,K] · w[N,K]^T (+ bias), x and out fp32, w bf16/f16/f32 as stored in the
// checkpoint. Never makes an fp32 copy of a whole weight.
//
// Two regimes:
// - few rows (decode): memory-bound. Each thread streams its share of weight rows once and
//   converts them to fp32 in registers (cpu_kernels' rows_dot_*), four input rows per pass
//   over a weight row. Reads the weight at close to memory bandwidth.
// - many rows (prefill, vision): compute-bound. Each thread converts a panel of kPanelN weight
//   rows × kPanelK columns to fp32 in its own cache-sized buffer and hands it to OpenBLAS sgemm
//   (single-threaded), accumulating over the K panels; threads split the N panels between them.
#include <cblas.h>

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_checks.h"
#include "backend/cpu/cpu_convert.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/packed_fp8.h"
#include "backend/packed_int4.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

// Up to this many input rows the weight is streamed through the dot kernels (in passes of four
// rows); above it the sgemm path wins. Measured with bench/cpu_ops (K=2048, N=11008 bf16, 2 cores):
// streaming grows linearly with M (M=4: 4-5 ms, M=8: 8-10 ms), sgemm costs 17-19 ms at M=16.
constexpr int64_t kSmallBatchRows = 8;
// A weight panel of 128 × 512 fp32 is 256 KiB: it stays in a core's L2 while sgemm uses it.
// (256 × 1024, 64 × 2048 and 512 × 256 measured no better.)
constexpr int64_t kPanelN = 128;
constexpr int64_t kPanelK = 512;

}  // namespace

void CpuBackend::linear_small_batch(const float* x, int64_t m, int64_t k, const Tensor& w,
                                    float* out) {
  const int64_t n = w.dim(0);
  const CpuKernels& kern = cpu_kernels();
  const DType wdt = w.dtype();
  // The bf16 kernel reads x with each block's even elements first (cpu_kernels.h).
  if (wdt == DType::BF16) {
    float* permuted = thread_scratch(1, size_t(m * k));
    for (int64_t r = 0; r < m; ++r) kern.permute_for_bf16(x + r * k, k, permuted + r * k);
    x = permuted;
  }
  ThreadPool::global().parallel_for(n, 16, [&](int64_t begin, int64_t end) {
    float dots[4];
    for (int64_t j = begin; j < end; ++j)
      for (int64_t r0 = 0; r0 < m; r0 += 4) {
        const int rows = int(std::min<int64_t>(4, m - r0));
        const float* xr = x + r0 * k;
        if (wdt == DType::BF16)
          kern.rows_dot_bf16(xr, k, rows, w.data<uint16_t>() + j * k, k, dots);
        else if (wdt == DType::F16)
          kern.rows_dot_f16(xr, k, rows, w.data<uint16_t>() + j * k, k, dots);
        else
          kern.rows_dot_f32(xr, k, rows, w.data<float>() + j * k, k, dots);
        for (int r = 0; r < rows; ++r) out[(r0 + r) * n + j] = dots[r];
      }
  });
}

void CpuBackend::linear_large_batch(const float* x, int64_t m, int64_t k, const Tensor& w,
                                    float* out) {
  const int64_t n = w.dim(0);
  const int64_t panels = (n + kPanelN - 1) / kPanelN;
  ThreadPool& pool = ThreadPool::global();
  const int threads = int(std::min<int64_t>(pool.size(), panels));
  const bool needs_conversion = w.dtype() != DType::F32;
  float* scratch = needs_conversion ? thread_scratch(threads, kPanelN * kPanelK) : nullptr;
  const size_t wsize = dtype_size(w.dtype());
  const char* wbytes = static_cast<const char*>(w.data());

  // parallel_for over exactly `threads` items gives each thread one index: its scratch slot.
  pool.parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    for (int64_t t = t_begin; t < t_end; ++t) {
      float* panel = scratch ? scratch + t * kPanelN * kPanelK : nullptr;
      for (int64_t p = panels * t / threads; p < panels * (t + 1) / threads; ++p) {
        const int64_t n0 = p * kPanelN, nb = std::min(kPanelN, n - n0);
        if (!needs_conversion) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(nb), int(k), 1.0f, x,
                      int(k), w.data<float>() + n0 * k, int(k), 0.0f, out + n0, int(n));
          continue;
        }
        for (int64_t k0 = 0; k0 < k; k0 += kPanelK) {
          const int64_t kb = std::min(kPanelK, k - k0);
          for (int64_t j = 0; j < nb; ++j)
            convert_to_f32(wbytes + ((n0 + j) * k + k0) * wsize, w.dtype(), panel + j * kb, kb);
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(nb), int(kb), 1.0f,
                      x + k0, int(k), panel, int(kb), k0 == 0 ? 0.0f : 1.0f, out + n0, int(n));
        }
      }
    }
  });
}

void CpuBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  check_cpu(x, "linear", "x");
  check_cpu(w, "linear", "w");
  check_cpu(out, "linear", "out");
  check_dtype(x, "linear", "x", {DType::F32});
  check_dtype(w, "linear", "w", {DType::F32, DType::BF16, DType::F16, DType::Q4, DType::F8E4M3});
  check_dtype(out, "linear", "out", {DType::F32});
  const bool int4 = w.dtype() == DType::Q4, fp8 = w.dtype() == DType::F8E4M3;
  if (!int4 && !fp8 && w.rank() != 2)
    fail_internal("linear: weight ", w.shape().str(), " must be [out_features, in_features]");
  const int64_t n = w.dim(0), k = int4 ? Int4Layout::of(w).k : fp8 ? Fp8Layout::of(w).k : w.dim(1);
  if (last_dim(x) != k)
    fail_internal("linear: input ", x.shape().str(), " does not end in the weight's in_features ",
                  k);
  const int64_t m = x.numel() / k;
  if (last_dim(out) != n || out.numel() != m * n)
    fail_internal("linear: output ", out.shape().str(), " must be [", m, ", ", n, "]");
  if (bias) {
    check_cpu(*bias, "linear", "bias");
    check_dtype(*bias, "linear", "bias", {DType::F32, DType::BF16, DType::F16});
    if (bias->numel() != n)
      fail_internal("linear: bias ", bias->shape().str(), " must have ", n, " entries");
  }
  if (m == 0) return;

  if (int4)
    linear_int4(x.data<float>(), m, w, out.data<float>());
  else if (fp8)
    linear_fp8(x.data<float>(), m, w, out.data<float>());
  else if (m <= kSmallBatchRows)
    linear_small_batch(x.data<float>(), m, k, w, out.data<float>());
  else
    linear_large_batch(x.data<float>(), m, k, w, out.data<float>());

  if (bias) {
    float* o = out.data<float>();
    ThreadPool::global().parallel_for(m, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        for (int64_t j = 0; j < n; ++j)
          o[r * n + j] += element_as_f32(bias->data(), bias->dtype(), j);
    });
  }
}

}  // namespace qwenvl
