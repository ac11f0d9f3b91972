#pragma once
// Matrix products through cuBLASLt: out[M,N] = x[M,K] · w[N,K]^T (+ bias[N]), bf16/f16 inputs,
// fp32 compute, out bf16/f16/f32. Row-major out is column-major out^T, so we ask cuBLASLt for
// out^T[N,M] = w^T(op T of the column-major [K,N] view of w) · x^T (the column-major [K,M] view
// of x). The bias then runs along cuBLASLt's rows, which is what CUBLASLT_EPILOGUE_BIAS adds.
// A plan (descriptors + an algorithm) is built once per shape and reused. The heuristic query is
// the slow part of a plan (host time, paid again by every prompt of a new length), so its answer
// is shared by all M in a power-of-two bucket: it is asked once for the bucket's largest M, and a
// shape whose M the answer does not serve (cuBLASLt refuses the call) asks for its own.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "core/dtype.h"

namespace qwenvl {

class LinearPlanner {
 public:
  // The bucket of M whose algorithm serves a product of m rows: the next power of two, at least
  // 16.
  static int64_t bucket_rows(int64_t m) {
    return m <= 16 ? 16 : int64_t(1) << (64 - __builtin_clzll(uint64_t(m - 1)));
  }

  LinearPlanner(void* workspace, size_t workspace_bytes);
  // rows > 0: every product of a shape runs the algorithm the heuristic gives its `rows`-row
  // product, whatever its own row count (batch invariance: one reduction order for every row
  // count); 0: the power-of-two buckets. Forgets the plans made so far.
  void set_fixed_bucket(int64_t rows);
  ~LinearPlanner();
  LinearPlanner(const LinearPlanner&) = delete;
  LinearPlanner& operator=(const LinearPlanner&) = delete;

  // Returns false when cuBLASLt has no algorithm for a fused bias of this dtype (the caller then
  // adds the bias itself); throws Error for any other failure. out's rows are ldc apart (0: n),
  // so that a product can fill a column block of a wider matrix; x's and w's rows are ld apart
  // (0: k), so that a product can take a column block of wider operands.
  bool run(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
           DType out_dtype, int64_t m, int64_t n, int64_t k, DType dtype, cudaStream_t stream,
           int64_t ldc = 0, int64_t ld = 0);

  // How the reference (transformers: torch's addmm through cuBLASLt, asking its heuristic for
  // this shape with contiguous operands and 256-byte aligned pointers) computes a product of m
  // rows: in `parts` slices of K, each summed into the output in the output's dtype in turn
  // (cuBLASLt's split-K with CUBLASLT_REDUCTION_SCHEME_INPLACE), or in one part. `known` is false
  // for any other algorithm (the caller then computes as it would anyway).
  struct ReferenceSplit {
    int parts = 1;
    bool known = false;
  };
  ReferenceSplit reference_split(int64_t m, int64_t n, int64_t k, DType dtype, DType out_dtype,
                                 int bias_dtype);

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool usable = false;
    bool from_bucket = false;  // algo is the bucket's answer, not yet seen to run for this shape
    // Copies of desc with a bias pointer set, one per bias (per layer): setting the pointer on
    // one shared descriptor before every call would make cuBLASLt re-examine it each time.
    std::map<const void*, cublasLtMatmulDesc_t> bias_descs;
  };
  // m, n, k, input dtype, out dtype, bias dtype (or -1), minimal pointer alignment, ldc, ld.
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int, int, int, int64_t, int64_t>;
  // plan's three column-major views for m rows: w [K, N] and x [K, M] with rows ld apart, out^T
  // [N, M] with ld ldc; and their release.
  static void create_layouts(Plan& plan, DType in, DType out, int64_t m, int64_t n, int64_t k,
                             int64_t ld, int64_t ldc);
  static void destroy_layouts(Plan& plan);
  Plan& plan_for(const Key& key);
  // The heuristic's first algorithm for `key` (whose m may be a bucket's), or false if none.
  bool heuristic(const Key& key, const Plan& plan, cublasLtMatmulAlgo_t& algo);
  void forget_plans();
  cublasStatus_t launch(const Plan& plan, cublasLtMatmulDesc_t desc, const void* x, const void* w,
                        void* out, cudaStream_t stream);
  cublasLtMatmulDesc_t desc_with_bias(Plan& plan, const Key& key, const void* bias);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_;
  size_t workspace_bytes_;
  std::map<Key, Plan> plans_;
  std::map<Key, std::pair<bool, cublasLtMatmulAlgo_t>> bucket_algos_;  // key with m = bucket
  int64_t fixed_bucket_ = 0;
  std::map<Key, ReferenceSplit> reference_splits_;
};

}  // namespace qwenvl
