#include "backend/cuda/cuda_linear.h"

#include <algorithm>

#include "backend/cuda/cuda_check.h"

namespace qwenvl {

namespace {

cudaDataType_t cuda_type(DType dtype) {
  switch (dtype) {
    case DType::BF16:
      return CUDA_R_16BF;
    case DType::F16:
      return CUDA_R_16F;
    case DType::F32:
      return CUDA_R_32F;
    default:
      fail_internal("cuBLASLt linear does not take ", dtype_name(dtype), " tensors");
  }
}

// The product's descriptor: fp32 compute, out^T = op_T(w) · x (see cuda_linear.h); with a bias
// dtype (>= 0), CUBLASLT_EPILOGUE_BIAS of that dtype, reading `bias` when it is given.
cublasLtMatmulDesc_t make_desc(int bias_dtype, const void* bias) {
  cublasLtMatmulDesc_t desc = nullptr;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t transa = CUBLAS_OP_T, transb = CUBLAS_OP_N;
  CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof(transa)));
  CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof(transb)));
  if (bias_dtype >= 0) {
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                sizeof(epilogue)));
    cudaDataType_t bias_type = cuda_type(DType(bias_dtype));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                &bias_type, sizeof(bias_type)));
  }
  if (bias)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                sizeof(bias)));
  return desc;
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

void LinearPlanner::forget_plans() {
  for (auto& [key, plan] : plans_) {
    destroy_layouts(plan);
    if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
    for (auto& [bias, desc] : plan.bias_descs) cublasLtMatmulDescDestroy(desc);
  }
  plans_.clear();
  bucket_algos_.clear();
}

LinearPlanner::~LinearPlanner() {
  forget_plans();
  if (handle_) cublasLtDestroy(handle_);
}

void LinearPlanner::set_fixed_bucket(int64_t rows) {
  if (rows == fixed_bucket_) return;
  forget_plans();
  fixed_bucket_ = rows;
}

void LinearPlanner::create_layouts(Plan& plan, DType in, DType out, int64_t m, int64_t n, int64_t k,
                                   int64_t ld, int64_t ldc) {
  const cudaDataType_t in_type = cuda_type(in), out_type = cuda_type(out);
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, in_type, uint64_t(k), uint64_t(n), ld));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, in_type, uint64_t(k), uint64_t(m), ld));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.c, out_type, uint64_t(n), uint64_t(m), ldc));
}

void LinearPlanner::destroy_layouts(Plan& plan) {
  for (cublasLtMatrixLayout_t* layout : {&plan.a, &plan.b, &plan.c}) {
    if (*layout) cublasLtMatrixLayoutDestroy(*layout);
    *layout = nullptr;
  }
}

LinearPlanner::Plan& LinearPlanner::plan_for(const Key& key) {
  auto found = plans_.find(key);
  if (found != plans_.end()) return found->second;
  auto [m, n, k, in_dtype, out_dtype, bias_dtype, align, ldc, ld] = key;
  Plan& plan = plans_[key];
  plan.desc = make_desc(bias_dtype, nullptr);
  // ld is K and ldc N for whole matrices.
  create_layouts(plan, DType(in_dtype), DType(out_dtype), m, n, k, ld, ldc);

  // The bucket's answer first; the caller falls back to this shape's own (see run()).
  Key bucket = key;
  std::get<0>(bucket) = fixed_bucket_ ? fixed_bucket_ : bucket_rows(m);
  auto found_bucket = bucket_algos_.find(bucket);
  if (found_bucket == bucket_algos_.end()) {
    Plan probe;  // layouts for the bucket's m, for the query only
    probe.desc = plan.desc;
    create_layouts(probe, DType(in_dtype), DType(out_dtype), std::get<0>(bucket), n, k, ld, ldc);
    cublasLtMatmulAlgo_t algo{};
    const bool ok = heuristic(bucket, probe, algo);
    destroy_layouts(probe);
    found_bucket = bucket_algos_.emplace(bucket, std::pair{ok, algo}).first;
  }
  plan.usable = found_bucket->second.first;
  plan.algo = found_bucket->second.second;
  plan.from_bucket = true;
  if (!plan.usable) {
    plan.from_bucket = false;
    plan.usable = heuristic(key, plan, plan.algo);
  }
  if (!plan.usable && bias_dtype < 0)
    fail_device("cuBLASLt has no algorithm for a ", m, "x", n, "x", k, " ",
                dtype_name(DType(in_dtype)), " product with ", dtype_name(DType(out_dtype)),
                " output");
  return plan;
}

bool LinearPlanner::heuristic(const Key& key, const Plan& plan, cublasLtMatmulAlgo_t& algo) {
  cublasLtMatmulPreference_t preference = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference,
                                                    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace_bytes_, sizeof(workspace_bytes_)));
  uint32_t align_bytes = uint32_t(std::get<6>(key));
  for (auto attribute :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &align_bytes,
                                                      sizeof(align_bytes)));
  cublasLtMatmulHeuristicResult_t result{};
  int found_count = 0;
  cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      handle_, plan.desc, plan.a, plan.b, plan.c, plan.c, preference, 1, &result, &found_count);
  cublasLtMatmulPreferenceDestroy(preference);
  if (status != CUBLAS_STATUS_SUCCESS || found_count == 0) return false;
  algo = result.algo;
  return true;
}

cublasStatus_t LinearPlanner::launch(const Plan& plan, cublasLtMatmulDesc_t desc, const void* x,
                                     const void* w, void* out, cudaStream_t stream) {
  const float alpha = 1.0f, beta = 0.0f;
  return cublasLtMatmul(handle_, desc, &alpha, w, plan.a, x, plan.b, &beta, out, plan.c, out,
                        plan.c, &plan.algo, workspace_, workspace_bytes_, stream);
}

cublasLtMatmulDesc_t LinearPlanner::desc_with_bias(Plan& plan, const Key& key, const void* bias) {
  auto found = plan.bias_descs.find(bias);
  if (found != plan.bias_descs.end()) return found->second;
  cublasLtMatmulDesc_t desc = make_desc(std::get<5>(key), bias);
  plan.bias_descs.emplace(bias, desc);
  return desc;
}

bool LinearPlanner::run(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
                        DType out_dtype, int64_t m, int64_t n, int64_t k, DType dtype,
                        cudaStream_t stream, int64_t ldc, int64_t ld) {
  int align = std::min(
      {alignment_of(x), alignment_of(w), alignment_of(out), bias ? alignment_of(bias) : 16});
  Key key{m,
          n,
          k,
          int(dtype),
          int(out_dtype),
          bias ? int(bias_dtype) : -1,
          align,
          ldc ? ldc : n,
          ld ? ld : k};
  Plan& plan = plan_for(key);
  if (!plan.usable) return false;
  const cublasLtMatmulDesc_t desc = bias ? desc_with_bias(plan, key, bias) : plan.desc;
  cublasStatus_t status = launch(plan, desc, x, w, out, stream);
  if (status != CUBLAS_STATUS_SUCCESS && plan.from_bucket) {
    // The bucket's algorithm does not serve this m: this shape asks for its own, once.
    cudaGetLastError();
    plan.from_bucket = false;
    plan.usable = heuristic(key, plan, plan.algo);
    if (!plan.usable) return false;
    status = launch(plan, desc, x, w, out, stream);
  }
  CUBLAS_CHECK(status);
  return true;
}

LinearPlanner::ReferenceSplit LinearPlanner::reference_split(int64_t m, int64_t n, int64_t k,
                                                             DType dtype, DType out_dtype,
                                                             int bias_dtype) {
  // torch derives the alignment preference from its pointers (256 for its allocations).
  constexpr int kTorchAlignment = 256;
  const Key key{m, n, k, int(dtype), int(out_dtype), bias_dtype, kTorchAlignment, n, k};
  auto found = reference_splits_.find(key);
  if (found != reference_splits_.end()) return found->second;
  ReferenceSplit split;
  Plan probe;
  probe.desc = make_desc(bias_dtype, nullptr);
  create_layouts(probe, dtype, out_dtype, m, n, k, k, n);
  cublasLtMatmulAlgo_t algo{};
  if (heuristic(key, probe, algo)) {
    int parts = 1;
    uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
    size_t written = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
                                                      &parts, sizeof(parts), &written));
    CUBLAS_CHECK(cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                      &scheme, sizeof(scheme), &written));
    split.parts = std::max(parts, 1);
    split.known = split.parts == 1 || scheme == CUBLASLT_REDUCTION_SCHEME_INPLACE;
  }
  destroy_layouts(probe);
  cublasLtMatmulDescDestroy(probe.desc);
  reference_splits_.emplace(key, split);
  return split;
}

}  // namespace qwenvl
