#pragma once
// Host-side launchers of our kernels, one family per .cu file. Pointers are device pointers;
// `dtype` arguments say how the memory behind them is typed. Launchers check the launch and
// never synchronize. Shapes are validated by the caller (cuda_ops.cpp).
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/residue_first.h"
#include "core/dtype.h"

namespace qwenvl::cuda {

// Whether 16-byte vector loads and stores may use p (the kernels' `vector` paths).
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// cuda_prefetch.cu: asks L2 for [p, p + bytes) (16-byte aligned, bytes a multiple of 16) and
// returns without waiting for the data; a kernel of a few blocks that ends as soon as it asked.
void prefetch_to_l2(const void* p, size_t bytes, cudaStream_t stream);

// cuda_convert.cu: dst[i] = src[i] across f32 / f16 / bf16 (or a plain copy of equal dtypes).
void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
             cudaStream_t stream);
// Fills n elements of dst with a quiet NaN (tests poison outputs with it).
void fill_nan(void* dst, DType dtype, int64_t n, cudaStream_t stream);

// cuda_mailbox.cu: a few bytes written by a kernel straight into a mailbox of pinned host memory
// mapped into the device's address space (no copy-engine transfer in the stream): the value at
// kMailboxValueOffset, then, once every byte of it is visible to the host, the tag word at the
// mailbox's start, which the host polls.
constexpr size_t kMailboxValueOffset = 16;
void copy_to_mailbox(const void* src, size_t bytes, char* mailbox, uint64_t tag,
                     cudaStream_t stream);
// Row row[0] of table[rows, row_bytes] into mailbox (tag[0] % mailboxes) of the `mailboxes` that
// start at `first` (each mailbox_bytes apart), tagged tag[0] + 1; a row outside the table or a
// negative tag writes nothing.
void publish_row_to_mailbox(const void* table, int64_t rows, size_t row_bytes, const int32_t* row,
                            const int32_t* tag, char* first, int mailboxes, size_t mailbox_bytes,
                            cudaStream_t stream);

// cuda_norm.cu. x, out, residual: `dtype` (bf16/f16); delta: dtype or f32; w: any float dtype,
// a weight (add_rms_norm reads it before waiting for the kernel before it, as the GEMV does).
// torch_order: several rows sum their squares in ATen's order for that row count (bit-exact
// with transformers); false: every row count in the one-pass order (batch invariance).
void rms_norm(const void* x, const void* w, DType w_dtype, void* out, int64_t rows, int cols,
              float eps, DType dtype, bool torch_order, cudaStream_t stream);
void add_rms_norm(void* residual, const void* delta, DType delta_dtype, const void* w,
                  DType w_dtype, void* out, int64_t rows, int cols, float eps, DType dtype,
                  bool torch_order, cudaStream_t stream);

// cuda_elementwise.cu. a, gate_up, out, x: `dtype`; b: dtype or f32.
void add(void* a, const void* b, DType b_dtype, int64_t n, DType dtype, cudaStream_t stream);
// out [rows, f] = silu(gate_up[:, :f]) * gate_up[:, f:], gate_up [rows, 2f].
void swiglu(const void* gate_up, void* out, int64_t rows, int64_t f, DType dtype,
            cudaStream_t stream);
void gelu(void* x, int64_t n, DType dtype, cudaStream_t stream);
// out[i] += bias[i % n_cols], for linear when cuBLASLt cannot fuse the bias.
void add_bias(void* out, DType out_dtype, const void* bias, DType bias_dtype, int64_t rows,
              int64_t cols, cudaStream_t stream);

// cuda_reference_products.cu: products that round as transformers' kernels do (see
// CudaBackend::linear_in_order and linear_residue_first). x, w, out, src, dst: `dtype` (bf16/f16).
// out [m, n] = x [m, k] · w [n, k]^T, each output's fp32 sum taken in increasing k.
void linear_in_order(const void* x, const void* w, void* out, int64_t m, int64_t n, int64_t k,
                     DType dtype, cudaStream_t stream);
// A product's K cut in parts, each laid out as cuBLAS's split-K kernels read a part: its
// length % 64 leading columns, zeros up to a whole 64-column tile, then the rest (as
// backend/residue_first.h lays out a width, here whatever the length). `begin`, `length`: the
// part's columns, numbered as in the source rows' ResidueFirst{source_count} layout; `offset`:
// where its block starts in a packed row of `width` columns.
constexpr int kMaxKParts = kMaxResidueFirstParts;
struct KParts {
  int count = 0;
  int begin[kMaxKParts] = {}, length[kMaxKParts] = {}, offset[kMaxKParts] = {};
  int width = 0;
  int source_count = 0;
};
// dst [rows, parts.width] = src [rows, src_ld]'s columns packed as `parts` says.
void pack_k_parts(const void* src, int64_t rows, int64_t src_ld, const KParts& parts, void* dst,
                  DType dtype, cudaStream_t stream);
// out[i] = round(out[i] + part[i]): one more part of a K split summed in out's dtype.
void fold_part(void* out, const float* part, int64_t n, DType dtype, cudaStream_t stream);

// cuda_rope.cu: Backend::rope_qkv. Pointers of `dtype` except the I32 index arrays; pos_row and
// inv_freq hold head_dim/2 entries on the device; slots may be null (row i for token i).
struct RopeQkvArgs {
  const void* qkv = nullptr;
  void* q = nullptr;
  void* k = nullptr;
  void* v = nullptr;
  const int32_t* slots = nullptr;
  const int32_t* positions = nullptr;  // [position rows, tokens]
  const int32_t* pos_row = nullptr;
  const float* inv_freq = nullptr;
  int64_t tokens = 0, kv_rows = 0;
  int heads_q = 0, heads_kv = 0, head_dim = 0;
  bool round_in_activation_dtype = false;  // RopeSpec's
};
void rope_qkv(const RopeQkvArgs& args, DType dtype, cudaStream_t stream);

// cuda_rows.cu. Rows of row_elems elements; conversion between float dtypes, plain copy else.
void gather_rows(const void* src, DType src_dtype, int64_t src_rows, const int32_t* indices,
                 int64_t count, int64_t row_elems, void* out, DType out_dtype, cudaStream_t stream);
void increment(int32_t* values, int64_t n, cudaStream_t stream);
void scatter_rows(const void* src, DType src_dtype, const int32_t* indices, int64_t count,
                  int64_t row_elems, void* dst, DType dst_dtype, int64_t dst_rows,
                  cudaStream_t stream);

// cuda_gemv.cu: out[M,N] = x[M,K] · w[N,K]^T (+ bias) for M <= kGemvMaxRows, K % 8 == 0, x and w
// of `dtype`, pointers 16-byte aligned. out: dtype or f32; bias: any float dtype or null.
constexpr int kGemvMaxRows = 8;
void gemv(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
          DType out_dtype, int m, int n, int k, DType dtype, cudaStream_t stream);
// out[M,f] = silu(x·w[:f]ᵀ + bias[:f]) * (x·w[f:]ᵀ + bias[f:]) for w [2f, K]; out of `dtype`.
void gemv_swiglu(const void* x, const void* w, const void* bias, DType bias_dtype, void* out, int m,
                 int f, int k, DType dtype, cudaStream_t stream);
// rope_qkv(x · wᵀ + bias) for rope.tokens <= kGemvMaxRows rows of x [tokens, K], w the stacked
// q/k/v projection [(heads_q + 2·heads_kv)·head_dim, K]; nothing of the product is stored.
void gemv_rope_qkv(const void* x, const void* w, const void* bias, DType bias_dtype,
                   const RopeQkvArgs& rope, int k, DType dtype, cudaStream_t stream);

// cuda_int4.cu: products with packed 4-bit weights w (backend/packed_int4.h, n rows of k values
// in groups of `group`). gemv_int4: out[M,N] = x[M,K] · wᵀ (+ bias) where gemv_int4_serves
// (M <= kGemvMaxRows, group % 32 == 0, 16-byte rows and pointers); out: dtype or f32.
// dequantize_int4: rows [first, first + rows) of w as (q - z) * s into out [rows, k] of dtype.
bool gemv_int4_serves(int m, int k, int group, const void* x, const void* w);
void gemv_int4(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
               DType out_dtype, int m, int n, int k, int group, DType dtype, cudaStream_t stream);
void dequantize_int4(const void* w, int64_t first, int64_t rows, int k, int group, void* out,
                     DType dtype, cudaStream_t stream);

// cuda_fp8.cu: products with FP8 E4M3 weights w (backend/packed_fp8.h: n rows of k values, each
// row's fp32 scale after its values). gemv_fp8: out[M,N] = x[M,K] · wᵀ (+ bias) where
// gemv_fp8_serves (M <= kGemvMaxRows, k % 16 == 0, 16-byte pointers); out: dtype or f32.
// dequantize_fp8: rows [first, first + rows) of w as value · scale into out [rows, k] of dtype.
bool gemv_fp8_serves(int m, int k, const void* x, const void* w);
void gemv_fp8(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
              DType out_dtype, int m, int n, int k, DType dtype, cudaStream_t stream);
void dequantize_fp8(const void* w, int64_t first, int64_t rows, int k, void* out, DType dtype,
                    cudaStream_t stream);

// cuda_flash_attention.cu / cuda_decode_attention.cu.
struct AttentionArgs {
  const void* q = nullptr;  // [nq, heads_q, head_dim]
  const void* k = nullptr;  // [nk, heads_kv, head_dim]
  const void* v = nullptr;
  void* out = nullptr;  // [nq, heads_q, head_dim]
  const int32_t* cu_q = nullptr;
  const int32_t* cu_k = nullptr;
  int segments = 0, max_q = 0, max_k = 0;
  int heads_q = 0, heads_kv = 0, head_dim = 0;
  bool causal = false;
  float scale = 1.0f;
  DType dtype = DType::BF16;
  // Paged keys (AttentionSegments::block_table): null, or [segments, block_stride] block ids;
  // key j of segment s is then row block_table[s · block_stride + j / block_size] · block_size +
  // j % block_size.
  const int32_t* block_table = nullptr;
  int block_stride = 0, block_size = 0;
};
bool flash_attention_supports(int head_dim);
void flash_attention(const AttentionArgs& args, cudaStream_t stream);

// Split-K decode: every segment has at most one query. Partials go to `scratch`.
bool decode_attention_supports(const AttentionArgs& args);
size_t decode_attention_scratch_bytes(const AttentionArgs& args, int multiprocessors);
void decode_attention(const AttentionArgs& args, void* scratch, int multiprocessors,
                      cudaStream_t stream);

// cuda_sample.cu: see sample_kernel's comment for the exact rule.
struct SampleArgs {
  float* logits = nullptr;  // [vocab], modified in place
  int vocab = 0;
  const int32_t* history = nullptr;
  int history_len = 0;
  float temperature = 1.0f, top_p = 1.0f, min_p = 0.0f, repetition_penalty = 1.0f;
  int top_k = 0;
  float uniform = 0.0f;
  int32_t* next_token = nullptr;
};
size_t sample_scratch_bytes(int vocab);
void sample(const SampleArgs& args, void* scratch, cudaStream_t stream);
// Many rows [rows, vocab]: the repetition penalty on each row's distinct ids, and greedy picks.
void penalize_repeats(float* logits, int rows, int vocab, const int32_t* ids,
                      const int32_t* offsets, const float* penalties, cudaStream_t stream);
void argmax_rows(const float* logits, int rows, int vocab, int32_t* next_tokens,
                 cudaStream_t stream);

}  // namespace qwenvl::cuda
