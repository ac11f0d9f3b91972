// CudaBackend's products that round as transformers' kernels do (Backend::linear_in_order,
// Backend::linear_residue_first). Through 32 random-weight vision blocks any rounding difference
// grows to transformers' own bf16 noise, so the vision tower computes the two products whose
// reference kernels differ from ours as those kernels do, found by comparing outputs bit for bit
// with transformers on an H100 (docs/CUDA.md, "Vision tower numerics"):
// - the patch embedding (a Conv3d with stride = kernel): cuDNN's implicit GEMM sums each output
//   in fp32 in increasing K, without tensor cores;
// - the MLP's down projection, K = 3420: rows of 3420 bf16 values are not 16-byte aligned, so
//   cuBLASLt takes an Ampere-style kernel that reads K residue first (backend/residue_first.h)
//   and, at some row counts, splits K in parts that it sums one after the other into the bf16
//   output, each part read residue first. The Hopper kernels we run give the same bits, at about
//   a quarter of the time, from operands stored residue first (one part) or packed part by part.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_linear.h"
#include "backend/cuda/cuda_op_checks.h"
#include "backend/cuda/cuda_profile.h"
#include "backend/cuda/cuda_state.h"

namespace qwenvl {

using namespace cuda_checks;

namespace {

// cuBLASLt's split of k columns in `parts` (as CUTLASS's serial split-K cuts it: slices of
// ceil(k / parts) rounded up to a multiple of 8 columns, the last one shorter), each part's block
// a whole number of tiles.
cuda::KParts k_parts(int64_t k, int parts) {
  const int64_t slice = ((k + parts - 1) / parts + 7) / 8 * 8;
  cuda::KParts p;
  p.source_count = int(k);
  for (int64_t begin = 0; begin < k && p.count < cuda::kMaxKParts; begin += slice) {
    const int64_t length = std::min(slice, k - begin);
    p.begin[p.count] = int(begin);
    p.length[p.count] = int(length);
    p.offset[p.count] = p.width;
    p.width += int((length + ResidueFirst::kTile - 1) / ResidueFirst::kTile * ResidueFirst::kTile);
    ++p.count;
  }
  return p;
}

}  // namespace

void CudaBackend::linear_in_order(const Tensor& x, const Tensor& w, Tensor& out) {
  const int64_t m = check_linear(x, w, nullptr, out, dtype_), n = w.dim(0), k = w.dim(1);
  has_dtype(out, dtype_, "linear_in_order", "out");
  CudaState& s = *state_;
  ProfileScope scope(s.profiler, s.stream,
                     [&] { return cat("linear_in_order ", m, "x", n, "x", k); });
  cuda::linear_in_order(x.data(), w.data(), out.data(), m, n, k, dtype_, s.stream);
}

void CudaBackend::linear_residue_first(const Tensor& x, const Tensor& w, const Tensor* bias,
                                       int64_t k, int64_t reference_rows, Tensor& out) {
  const int64_t m = check_linear(x, w, bias, out, dtype_), n = w.dim(0);
  if (k < 1 || ResidueFirst{k}.width() != w.dim(1))
    fail_internal("CUDA linear_residue_first: the weight's ", w.dim(1), " columns do not hold ", k,
                  " columns laid out residue first");
  CudaState& s = *state_;
  // Stored residue first, the operands are already what one part reads; a k of whole 16-byte
  // rows is stored as it is; decode-sized products take the GEMV either way.
  int parts = 1;
  if (m > 0 && ResidueFirst{k}.residue() && out.dtype() == dtype_ &&
      !gemv_serves(s, m, w.dim(1), x, w)) {
    const LinearPlanner::ReferenceSplit split = s.linear->reference_split(
        std::max(reference_rows, m), n, k, dtype_, out.dtype(), bias ? int(bias->dtype()) : -1);
    if (split.known && split.parts <= cuda::kMaxKParts) parts = split.parts;
  }
  if (parts == 1)
    linear(x, w, bias, out);
  else
    linear_in_parts(x, w, bias, k, parts, out);
}

void CudaBackend::linear_in_parts(const Tensor& x, const Tensor& w, const Tensor* bias, int64_t k,
                                  int parts_count, Tensor& out) {
  CudaState& s = *state_;
  const int64_t m = x.numel() / x.dim(-1), n = w.dim(0);
  const cuda::KParts parts = k_parts(k, parts_count);
  ProfileScope scope(s.profiler, s.stream, [&] {
    return cat("linear_residue_first ", m, "x", n, "x", k, " in ", parts.count);
  });
  const size_t mark = workspace_mark();
  Tensor packed_x = alloc({m, parts.width}, dtype_), packed_w = alloc({n, parts.width}, dtype_);
  cuda::pack_k_parts(x.data(), m, x.dim(-1), parts, packed_x.data(), dtype_, s.stream);
  cuda::pack_k_parts(w.data(), n, w.dim(1), parts, packed_w.data(), dtype_, s.stream);
  Tensor part_sum = alloc({m, n}, DType::F32);
  const DType bias_dtype = bias ? bias->dtype() : DType::F32;
  const size_t element = dtype_size(dtype_);
  for (int j = 0; j < parts.count; ++j) {
    const char* xj = static_cast<const char*>(packed_x.data()) + parts.offset[j] * element;
    const char* wj = static_cast<const char*>(packed_w.data()) + parts.offset[j] * element;
    const int64_t kj = (j + 1 < parts.count ? parts.offset[j + 1] : parts.width) - parts.offset[j];
    if (j > 0) {  // the part's fp32 sum joins the output, rounded to its dtype
      s.linear->run(xj, wj, nullptr, bias_dtype, part_sum.data(), DType::F32, m, n, kj, dtype_,
                    s.stream, 0, parts.width);
      cuda::fold_part(out.data(), part_sum.data<float>(), m * n, dtype_, s.stream);
    } else if (!s.linear->run(xj, wj, bias ? bias->data() : nullptr, bias_dtype, out.data(),
                              out.dtype(), m, n, kj, dtype_, s.stream, 0, parts.width)) {
      s.linear->run(xj, wj, nullptr, bias_dtype, out.data(), out.dtype(), m, n, kj, dtype_,
                    s.stream, 0, parts.width);
      cuda::add_bias(out.data(), out.dtype(), bias->data(), bias_dtype, m, n, s.stream);
    }
  }
  workspace_release(mark);
}

void CudaBackend::prepare_linear_residue_first(const Tensor& w, int64_t k, int64_t max_rows) {
  prepare_linear(w, true, dtype_, max_rows);  // one part: the product as stored
  if (!ResidueFirst{k}.residue()) return;
  // Which split a request needs depends on its image's size: prepare the parts' products of
  // every split cuBLASLt takes for such products (2 to 4 parts seen on H100 and H200).
  const size_t mark = workspace_mark();
  Tensor b = alloc({w.dim(0)}, dtype_);
  for (int parts = 2; parts <= 4; ++parts)
    prepare_products(
        w, dtype_, max_rows,
        [&](const Tensor& x, Tensor& out) { linear_in_parts(x, w, &b, k, parts, out); },
        [&](int64_t rows) { return linear_residue_first_workspace(rows, w.dim(0), k); });
  workspace_release(mark);
}

}  // namespace qwenvl
