#include "backend/cuda/cuda_linear.h"

#include <algorithm>

#include "backend/cuda/cuda_check.h"

namespace qwenvl {

namespace {

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    case DType::F32: return CUDA_R_32F;
    default: fail("cuBLASLt linear does not take ", dtype_name(dtype), " tensors");
  }
}

int alignment_of(const void* p) {
  auto address = reinterpret_cast<uintptr_t>(p);
  int align = 16;
  while (align > 1 && address % align) align /= 2;
  return align;
}

}  // namespace

LinearPlanner::LinearPlanner(void* workspace, size_t workspace_bytes)
    : workspace_(workspace), workspace_bytes_(workspace_bytes) {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
}

LinearPlanner::~LinearPlanner() {
  for (auto& [key, plan] : plans_) {
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.c) cublasLtMatrixLayoutDestroy(plan.c);
    if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
  }
  if (handle_) cublasLtDestroy(handle_);
}

LinearPlanner::Plan& LinearPlanner::plan_for(const Key& key) {
  auto found = plans_.find(key);
  if (found != plans_.end()) return found->second;
  auto [m, n, k, in_dtype, out_dtype, bias_dtype, align] = key;
  Plan& plan = plans_[key];
  cudaDataType_t in = cuda_type(DType(in_dtype)), out = cuda_type(DType(out_dtype));
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &transa,
                                              sizeof(transa)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &transb,
                                              sizeof(transb)));
  if (bias_dtype >= 0) {
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                &epilogue, sizeof(epilogue)));
    cudaDataType_t bias_type = cuda_type(DType(bias_dtype));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                &bias_type, sizeof(bias_type)));
  }
  // Column-major views: w is [K, N] with ld K, x is [K, M] with ld K, out^T is [N, M] with ld N.
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, in, uint64_t(k), uint64_t(n), k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, in, uint64_t(k), uint64_t(m), k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.c, out, uint64_t(n), uint64_t(m), n));

  cublasLtMatmulPreference_t preference = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
      preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes_,
      sizeof(workspace_bytes_)));
  uint32_t align_bytes = uint32_t(align);
  for (auto attribute : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                         CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                         CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                         CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &align_bytes,
                                                      sizeof(align_bytes)));
  cublasLtMatmulHeuristicResult_t result{};
  int found_count = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, preference, 1, &result, &found_count);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status == CUBLAS_STATUS_SUCCESS && found_count > 0) {
    plan.algo = result.algo;
    plan.usable = true;
  } else if (bias_dtype < 0) {
    fail("cuBLASLt has no algorithm for a ", m, "x", n, "x", k, " ", dtype_name(DType(in_dtype)),
         " product with ", dtype_name(DType(out_dtype)), " output (status ", int(status), ")");
  }
  return plan;
}

bool LinearPlanner::run(const void* x, const void* w, const void* bias, DType bias_dtype,
                        void* out, DType out_dtype, int64_t m, int64_t n, int64_t k, DType dtype,
                        cudaStream_t stream) {
  int align = std::min({alignment_of(x), alignment_of(w), alignment_of(out),
                        bias ? alignment_of(bias) : 16});
  Key key{m, n, k, int(dtype), int(out_dtype), bias ? int(bias_dtype) : -1, align};
  Plan& plan = plan_for(key);
  if (!plan.usable) return false;
  if (bias)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                &bias, sizeof(bias)));
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, out,
                              plan.c, out, plan.c, &plan.algo, workspace_, workspace_bytes_,
                              stream));
  return true;
}

}  // namespace qwenvl
