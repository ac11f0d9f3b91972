#pragma once
// The CUDA backend: bf16 or fp16 activations with fp32 accumulation, cuBLASLt for matrix
// products (our own GEMV for decode-sized batches), our own flash attention and fused kernels,
// CUDA graphs for the decode step. This header stays free of CUDA includes so that model and
// runtime code can name the backend without the toolkit's headers; the device state lives in
// CudaState (cuda_state.h).
//
// Files, one family each: cuda_backend.cpp (memory, copies, graphs), cuda_ops.cpp (op checks and
// dispatch), cuda_linear.cpp (cuBLASLt), cuda_gemv.cu, cuda_norm.cu, cuda_elementwise.cu,
// cuda_rope.cu, cuda_rows.cu, cuda_convert.cu, cuda_sample.cu, cuda_flash_attention.cu (prefill,
// windows), cuda_decode_attention.cu (split-K for one query per segment).
//
// fp16 and overflow: the last vision blocks' MLP can exceed fp16's range. Every kernel of ours
// that writes f16 saturates to +-65504 (as transformers clamps hidden states in fp16 models such
// as T5) instead of producing inf; cuBLASLt's f16 outputs are not clamped, so a caller that
// expects large products (the vision MLP's down projection) asks linear for an f32 output and
// adds it with add()/add_rms_norm(), which accept an f32 delta.
#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"

namespace qwenvl {

struct CudaState;

class CudaBackend : public Backend {
 public:
  explicit CudaBackend(DType dtype);  // dtype: BF16 or F16; throws Error without a GPU
  ~CudaBackend() override;
  std::string name() const override;
  Device device() const override { return Device::CUDA; }
  DType compute_dtype() const override { return dtype_; }

  void reserve(size_t weight_bytes, size_t persistent_bytes, size_t workspace_bytes) override;
  Tensor upload_weight(const Tensor& host, DType dtype) override;
  Tensor upload_weight_stacked(const std::vector<Tensor>& parts, DType dtype) override;
  Tensor alloc_persistent(const Shape& shape, DType dtype) override;
  Tensor alloc(const Shape& shape, DType dtype) override;
  size_t workspace_mark() const override;
  void workspace_release(size_t mark) override;
  size_t peak_bytes() const override;

  void copy_from_host(const Tensor& host, Tensor& device_dst) override;
  // Returns once host_dst holds the data (it synchronizes the stream).
  void copy_to_host(const Tensor& device_src, Tensor& host_dst) override;
  void synchronize() override;
  int64_t begin_read(const Tensor& device_src) override;
  void end_read(int64_t ticket, Tensor& host_dst) override;
  void publish_row(const Tensor& table, const Tensor& row, const Tensor& tag) override;
  void wait_published(int64_t tag, Tensor& host_dst) override;

  void prepare_linear(const Tensor& w, bool bias, DType out_dtype, int64_t max_rows) override;
  void prepare_linear_rope_qkv(const Tensor& w_qkv, QkvProducts products, int64_t q_rows,
                               int64_t max_rows) override;
  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override;
  void linear_in_order(const Tensor& x, const Tensor& w, Tensor& out) override;
  void linear_residue_first(const Tensor& x, const Tensor& w, const Tensor* bias, int64_t k,
                            int64_t reference_rows, Tensor& out) override;
  void prepare_linear_residue_first(const Tensor& w, int64_t k, int64_t max_rows) override;
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override;
  void add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps,
                    Tensor& out) override;
  void add(Tensor& a, const Tensor& b) override;
  void swiglu(const Tensor& gate_up, Tensor& out) override;
  void linear_swiglu(const Tensor& x, const Tensor& w_gate_up, const Tensor* bias, Tensor& gate_up,
                     Tensor& out) override;
  void gelu(Tensor& x) override;
  void rope_qkv(const Tensor& qkv, const Tensor& positions, const RopeSpec& spec,
                const Tensor& slots, Tensor& q, Tensor& k, Tensor& v) override;
  void linear_rope_qkv(const Tensor& x, const Tensor& w_qkv, const Tensor& b_qkv,
                       QkvProducts products, const Tensor& positions, const RopeSpec& spec,
                       const Tensor& slots, Tensor& qkv, Tensor& q, Tensor& k, Tensor& v) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionSegments& segments, Tensor& out) override;
  void gather_rows(const Tensor& src, const Tensor& indices, Tensor& out) override;
  void scatter_rows(const Tensor& src, const Tensor& indices, Tensor& dst) override;
  void increment(Tensor& values) override;
  // `uniform` and `params` are launch arguments: keep sample outside run_captured.
  void sample(Tensor& logits, const Tensor& history, const SamplingParams& params, float uniform,
              Tensor& next_token) override;
  void penalize_repeats(Tensor& logits, const Tensor& ids, const Tensor& offsets,
                        const Tensor& penalties) override;
  void argmax_rows(const Tensor& logits, Tensor& next_tokens) override;

  // Captures the ops `enqueue` issues into a CUDA graph the first time `key` is seen and replays
  // that graph on every later call (enqueue is then not called). Everything that varies between
  // replays must be read from device tensors; enqueue must not copy from or to the host, nor
  // call sample (its settings are launch arguments). reserve() drops the recorded graphs.
  void run_captured(int key, const std::function<void()>& enqueue) override;
  bool replays_captures() const override { return true; }
  // No GEMV (its epilogues fused or not), every cuBLASLt product of a weight shape on the
  // algorithm its kInvariantRows-row product gets, norms in their one-pass order, attention on
  // the flash kernel alone (no split-K decode kernels).
  void set_batch_invariant(bool on) override;
  void profile_section(const std::string& name) override;
  void prefetch(const Tensor& weight) override;
  void reserve_streaming(size_t slot_bytes, int slots, size_t host_bytes) override;
  void begin_streamed_pass(int sequence) override;
  void use_streamed_group(int group) override;
  void streamed_group_done(int group) override;

  // For benchmarks and tests: decode-sized linear through cuBLASLt even where the GEMV applies.
  void set_prefer_gemv(bool prefer);

 private:
  // linear with a packed 4-bit weight (cuda_linear_packed.cpp): the int4 GEMV for decode-sized
  // products, otherwise slabs of the weight dequantized (linear_by_slabs) and cuBLASLt.
  void linear_int4(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out);
  // linear with an FP8 weight (cuda_linear_packed.cpp): the FP8 GEMV for decode-sized products,
  // otherwise dequantized slabs as for int4.
  void linear_fp8(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out);
  // out [m, n] = x · wᵀ (+ bias) for a packed weight of n rows and k columns, a slab of rows at a
  // time: dequantize(first row, rows, slab) writes the slab [rows, k] in the compute dtype into
  // the staging ring's device twin, then cuBLASLt multiplies it into its columns of out.
  void linear_by_slabs(
      const Tensor& x, int64_t n, int64_t k, const Tensor* bias, Tensor& out,
      const std::function<void(int64_t first, int64_t rows, void* slab)>& dequantize);
  // out = x · wᵀ + bias as one cuBLASLt product per block of w's rows (row_blocks sum to w's
  // rows), each writing its column block of out [m, w rows]. False, with out partly written, where
  // cuBLASLt cannot fuse this bias.
  bool linear_row_blocks(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out,
                         const std::vector<int64_t>& row_blocks);
  // linear_residue_first's product as `parts` slices of K (cuBLASLt's split-K, see
  // cuda_reference_products.cpp), each packed residue first, summed into out in its dtype.
  void linear_in_parts(const Tensor& x, const Tensor& w, const Tensor* bias, int64_t k, int parts,
                       Tensor& out);
  // One product per power-of-two bucket of M up to max_rows (see prepare_linear), each run by
  // `product`(x, out) with x [rows, w's columns] and out [rows, w's rows] from the workspace,
  // where the workspace also holds the product's own scratch_elements(rows) (if given).
  void prepare_products(const Tensor& w, DType out_dtype, int64_t max_rows,
                        const std::function<void(const Tensor& x, Tensor& out)>& product,
                        const std::function<int64_t(int64_t rows)>& scratch_elements = nullptr);

  DType dtype_;
  std::unique_ptr<CudaState> state_;
};

std::unique_ptr<Backend> make_cuda_backend(DType dtype);
bool cuda_device_available();
// The free memory of every CUDA device, in ordinal order (measured after this process's context
// on each exists, so what the contexts take is already gone); empty without a driver or device.
std::vector<int64_t> cuda_free_memory();
std::string cuda_device_name();  // GPU 0's; empty without a device
// GPU 0's memory and host-to-device bandwidths from timed copies (cuda_bandwidth_probe.cpp).
std::optional<GpuBandwidths> cuda_measure_bandwidths();

}  // namespace qwenvl
