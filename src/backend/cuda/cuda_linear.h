#pragma once
// Matrix products through cuBLASLt: out[M,N] = x[M,K] · w[N,K]^T (+ bias[N]), bf16/f16 inputs,
// fp32 compute, out bf16/f16/f32. Row-major out is column-major out^T, so we ask cuBLASLt for
// out^T[N,M] = w^T(op T of the column-major [K,N] view of w) · x^T (the column-major [K,M] view
// of x). The bias then runs along cuBLASLt's rows, which is what CUBLASLT_EPILOGUE_BIAS adds.
// A plan (descriptors + the heuristic's best algorithm) is built once per shape and reused.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "core/dtype.h"

namespace qwenvl {

class LinearPlanner {
 public:
  LinearPlanner(void* workspace, size_t workspace_bytes);
  ~LinearPlanner();
  LinearPlanner(const LinearPlanner&) = delete;
  LinearPlanner& operator=(const LinearPlanner&) = delete;

  // Returns false when cuBLASLt has no algorithm for a fused bias of this dtype (the caller then
  // adds the bias itself); throws Error for any other failure.
  bool run(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
           DType out_dtype, int64_t m, int64_t n, int64_t k, DType dtype, cudaStream_t stream);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool usable = false;
  };
  // m, n, k, input dtype, out dtype, bias dtype (or -1), minimal pointer alignment.
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int, int, int>;
  Plan& plan_for(const Key& key);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_;
  size_t workspace_bytes_;
  std::map<Key, Plan> plans_;
};

}  // namespace qwenvl
