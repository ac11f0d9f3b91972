// CudaBackend::linear with packed weights: 4-bit (backend/packed_int4.h) and FP8
// (backend/packed_fp8.h). Decode-sized products read the packed rows with their GEMV
// (cuda_int4.cu, cuda_fp8.cu). Larger ones dequantize the weight a slab of rows at a time, in
// the compute dtype, and multiply each slab with cuBLASLt into its columns of out: tensor cores
// at the price of one extra write and read of the slab.
// The slabs live in the staging ring's device twin (32 MiB, cuda_state.h): uploads use it only
// to convert what they copy, on the same stream, so a slab and an upload never overlap, and the
// model's workspace plan needs nothing for them.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_op_checks.h"
#include "backend/cuda/cuda_state.h"
#include "backend/packed_fp8.h"
#include "backend/packed_int4.h"

namespace qwenvl {

using namespace cuda_checks;

namespace {

// Rows of a slab: whole tiles of the product, as many as the staging twin holds.
constexpr int64_t kSlabRowMultiple = 64;

}  // namespace

void CudaBackend::linear_by_slabs(
    const Tensor& x, int64_t n, int64_t k, const Tensor* bias, Tensor& out,
    const std::function<void(int64_t first, int64_t rows, void* slab)>& dequantize) {
  CudaState& s = *state_;
  const int64_t m = x.numel() / k;
  const void* bias_data = bias ? bias->data() : nullptr;
  const DType bias_dtype = bias ? bias->dtype() : DType::F32;
  const size_t row_bytes = size_t(k) * dtype_size(dtype_);
  const size_t slab_bytes = size_t(StagingRing::kSlots) * StagingRing::kSlotBytes;
  const int64_t slab =
      std::min(n, int64_t(slab_bytes / row_bytes) / kSlabRowMultiple * kSlabRowMultiple);
  if (slab <= 0)
    fail_internal("CUDA linear: a packed weight of ", k, " columns is too wide for a slab of ",
                  slab_bytes, " bytes");
  void* tile = s.staging.device;
  const size_t out_size = dtype_size(out.dtype());
  for (int64_t row0 = 0; row0 < n; row0 += slab) {
    const int64_t rows = std::min(slab, n - row0);
    dequantize(row0, rows, tile);
    auto* block = static_cast<char*>(out.data()) + size_t(row0) * out_size;
    if (!s.linear->run(x.data(), tile, nullptr, bias_dtype, block, out.dtype(), m, rows, k, dtype_,
                       s.stream, n))
      fail_device("cuBLASLt has no algorithm for a ", m, "x", rows, "x", k, " product");
  }
  if (bias) cuda::add_bias(out.data(), out.dtype(), bias_data, bias_dtype, m, n, s.stream);
}

void CudaBackend::linear_int4(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  const Int4Layout layout = Int4Layout::of(w);
  const int64_t n = layout.rows, k = layout.k;
  const int64_t m = check_linear_rows(x, w, n, k, bias, out, dtype_);
  if (m == 0) return;
  CudaState& s = *state_;
  ProfileScope scope(s.profiler, s.stream, [&] { return cat("linear int4 ", m, "x", n, "x", k); });
  if (s.prefer_gemv &&
      cuda::gemv_int4_serves(int(m), int(k), int(layout.group), x.data(), w.data())) {
    cuda::gemv_int4(x.data(), w.data(), bias ? bias->data() : nullptr,
                    bias ? bias->dtype() : DType::F32, out.data(), out.dtype(), int(m), int(n),
                    int(k), int(layout.group), dtype_, s.stream);
    return;
  }
  linear_by_slabs(x, n, k, bias, out, [&](int64_t first, int64_t rows, void* slab) {
    cuda::dequantize_int4(w.data(), first, rows, int(k), int(layout.group), slab, dtype_, s.stream);
  });
}

void CudaBackend::linear_fp8(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  const Fp8Layout layout = Fp8Layout::of(w);
  const int64_t n = layout.rows, k = layout.k;
  const int64_t m = check_linear_rows(x, w, n, k, bias, out, dtype_);
  if (m == 0) return;
  CudaState& s = *state_;
  ProfileScope scope(s.profiler, s.stream, [&] { return cat("linear fp8 ", m, "x", n, "x", k); });
  if (s.prefer_gemv && cuda::gemv_fp8_serves(int(m), int(k), x.data(), w.data())) {
    cuda::gemv_fp8(x.data(), w.data(), bias ? bias->data() : nullptr,
                   bias ? bias->dtype() : DType::F32, out.data(), out.dtype(), int(m), int(n),
                   int(k), dtype_, s.stream);
    return;
  }
  linear_by_slabs(x, n, k, bias, out, [&](int64_t first, int64_t rows, void* slab) {
    cuda::dequantize_fp8(w.data(), first, rows, int(k), slab, dtype_, s.stream);
  });
}

}  // namespace qwenvl
