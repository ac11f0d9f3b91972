#pragma once
// The checks CudaBackend's ops share (cuda_ops.cpp, cuda_reference_products.cpp): one sentence
// per failure, naming the op and the argument.
#include <utility>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_state.h"
#include "core/error.h"
#include "core/tensor.h"

namespace qwenvl::cuda_checks {

inline void on_device(const Tensor& t, const char* op, const char* what) {
  if (t.device() != Device::CUDA || (!t.data() && t.numel() > 0))
    fail_internal("CUDA ", op, ": ", what, " must be a tensor on the GPU");
}

inline void has_dtype(const Tensor& t, DType dtype, const char* op, const char* what) {
  if (t.dtype() != dtype)
    fail_internal("CUDA ", op, ": ", what, " is ", dtype_name(t.dtype()), " but must be ",
                  dtype_name(dtype));
}

inline void float_dtype(const Tensor& t, const char* op, const char* what) {
  if (!is_float(t.dtype()))
    fail_internal("CUDA ", op, ": ", what, " must be a float tensor, not ", dtype_name(t.dtype()));
}

inline void same_numel(const Tensor& a, const Tensor& b, const char* op) {
  if (a.numel() != b.numel())
    fail_internal("CUDA ", op, ": shapes ", a.shape().str(), " and ", b.shape().str(),
                  " differ in size");
}

using cuda::aligned16;

using Named = std::pair<const Tensor*, const char*>;

// Whether our matrix-vector kernel (rather than cuBLASLt) takes a product of m rows of x [m, k]
// with a weight w of the compute dtype: one row, 16-byte rows and pointers. From 2 rows on
// cuBLASLt reads the weight faster (bench_cuda_ops: 79-88% of bandwidth at 4 and 8 rows, the
// GEMV 36-47%); the packed weights' GEMVs, which read fewer bytes, serve up to kGemvMaxRows.
inline bool gemv_serves(const CudaState& s, int64_t m, int64_t k, const Tensor& x,
                        const Tensor& w) {
  return s.prefer_gemv && m == 1 && k > 0 && k % 8 == 0 && aligned16(x.data()) &&
         aligned16(w.data());
}

// linear's checks on a weight of n outputs over k inputs (its layout checked by the caller):
// device tensors, x [..., K] in the compute dtype, out [M, N] in it or in f32, bias (if any) a
// float [N]. Returns M.
inline int64_t check_linear_rows(const Tensor& x, const Tensor& w, int64_t n, int64_t k,
                                 const Tensor* bias, const Tensor& out, DType dtype) {
  on_device(x, "linear", "x");
  on_device(w, "linear", "the weight");
  on_device(out, "linear", "out");
  has_dtype(x, dtype, "linear", "x");
  if (out.dtype() != dtype && out.dtype() != DType::F32)
    fail_internal("CUDA linear: out must be ", dtype_name(dtype), " or f32, not ",
                  dtype_name(out.dtype()));
  if (x.rank() < 1 || x.dim(-1) != k)
    fail_internal("CUDA linear: x ", x.shape().str(), " does not end in the weight's K = ", k);
  const int64_t m = k ? x.numel() / k : 0;
  if (out.dim(-1) != n || out.numel() != m * n)
    fail_internal("CUDA linear: out ", out.shape().str(), " should hold ", m, " rows of ", n);
  if (bias) {
    on_device(*bias, "linear", "the bias");
    float_dtype(*bias, "linear", "the bias");
    if (bias->numel() != n)
      fail_internal("CUDA linear: the bias has ", bias->numel(), " values, not ", n);
  }
  return m;
}

// linear's checks with a 16-bit weight w [N, K] in the compute dtype (cuBLASLt multiplies equal
// input types: linear weights are uploaded in the compute dtype). Returns M.
inline int64_t check_linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& out,
                            DType dtype) {
  has_dtype(w, dtype, "linear", "the weight");
  if (w.rank() != 2) fail_internal("CUDA linear: the weight must be [N, K], got ", w.shape().str());
  return check_linear_rows(x, w, w.dim(0), w.dim(1), bias, out, dtype);
}

}  // namespace qwenvl::cuda_checks
