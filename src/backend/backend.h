#pragma once
// The op interface: everything the model asks of a device. The model (src/model) is written
// against this header only; src/backend/cpu and src/backend/cuda implement it. Backends know
// nothing about Qwen: they see matrices, norms, rotations, attention segments and rows.
//
// Conventions
// - Tensors are dense row-major and live on this backend's device (CPU: host memory).
// - Activations use compute_dtype() (CPU: f32; CUDA: bf16 or f16, fp32 accumulation).
//   Weights keep the dtype they were uploaded in; ops accept any float weight dtype.
// - Outputs are passed in preallocated; ops never allocate device memory themselves.
// - Anything that varies per decode step (positions, cache slots, sequence lengths, the next
//   token) is read from device tensors, never baked into the launch, so that a decode step can
//   be captured once as a CUDA graph and replayed.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/streamed_weights.h"
#include "core/tensor.h"

namespace qwenvl {

// Rotary embedding, general enough for both of Qwen2.5-VL's kinds (see model/rope.h):
// frequency j in [0, head_dim/2) rotates the pair (x[j], x[j + head_dim/2]) ("rotate_half"
// layout) by angle positions[pos_row[j], token] * inv_freq[j], computed in fp32.
struct RopeSpec {
  int head_dim = 0;
  std::vector<int32_t> pos_row;  // head_dim/2 entries: which row of `positions` drives frequency j
  std::vector<float> inv_freq;   // head_dim/2 entries
  // With bf16/fp16 activations: false rotates in fp32 and rounds once (transformers'
  // apply_rotary_pos_emb_vision); true rounds cos and sin to the activation dtype and rounds each
  // product and the sum, as transformers' text model does (its rotary embedding hands cos/sin
  // over in the activation dtype). No effect on fp32 activations.
  bool round_in_activation_dtype = false;
};

// Variable-length attention segments (flash-attention's cu_seqlens). Segment s has queries
// q[cu_q[s], cu_q[s+1]) and keys/values k[cu_k[s], cu_k[s+1]). With `causal`, masks are aligned
// bottom-right: the last query of a segment sees all of its keys (prefill after a cached prefix,
// decode). cu_q / cu_k are I32 device tensors of segments+1 entries; max_q / max_k are upper
// bounds used only to size launches (so a graph captured with max_k = context limit stays valid).
struct AttentionSegments {
  Tensor cu_q, cu_k;
  int segments = 0;
  int max_q = 0, max_k = 0;
  bool causal = false;
  float scale = 1.0f;
  // Paged keys (a KV cache shared by many sequences in blocks of block_size rows): when defined,
  // an I32 device tensor [segments, blocks per segment]; segment s's key j is then row
  // block_table[s, j / block_size] · block_size + j % block_size of k and v, and cu_k only counts
  // the keys (segment s has cu_k[s+1] - cu_k[s]). Undefined: key j is row cu_k[s] + j.
  Tensor block_table;
  int block_size = 0;
  // The first `single_query_segments` segments have one query each and at most
  // `single_query_max_k` keys (a batch's decode rows before its prompt rows): a backend may run
  // them with a decode kernel apart from the rest.
  int single_query_segments = 0, single_query_max_k = 0;
};

// How linear_rope_qkv multiplies its stacked weight: as one product, or as three (the query, key
// and value row blocks) for a checkpoint whose projections are separate layers. The values are
// the same up to rounding; a backend whose products round by shape (cuBLASLt picks an algorithm
// per shape) then rounds as the three separate layers do.
enum class QkvProducts { kOne, kPerProjection };

struct SamplingParams {
  float temperature = 1.0f;         // 0: greedy (argmax)
  int top_k = 0;                    // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off; applied to ids in `history`, as transformers does
};

constexpr size_t kAllocationAlignment = 256;
// What an allocation of `bytes` takes in a region: bytes rounded up to kAllocationAlignment.
constexpr size_t allocation_size(size_t bytes) {
  return (bytes + kAllocationAlignment - 1) / kAllocationAlignment * kAllocationAlignment;
}

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  virtual DType compute_dtype() const = 0;

  // ---- memory: three regions, sized once before use so a planner can account for all of it.
  // Every allocation starts at a multiple of kAllocationAlignment, so a plan adds at most that
  // much per tensor.
  // weights: uploaded parameters; persistent: KV cache and other state that lives across calls;
  // workspace: activations of one forward pass, a bump allocator reset with workspace_release.
  virtual void reserve(size_t weight_bytes, size_t persistent_bytes, size_t workspace_bytes) = 0;
  // A parameter for use on this device, in `dtype`. May return a view of `host` without copying
  // (the CPU backend keeps memory-mapped weights where they are).
  virtual Tensor upload_weight(const Tensor& host, DType dtype) = 0;
  // One parameter made of host tensors stacked along their first dimension (equal trailing
  // dimensions), in `dtype`: fused projections such as q/k/v or gate/up, read by one matrix product
  // instead of several. A backend that keeps weights where they are (the CPU) copies the parts
  // into one buffer in their own dtype when `dtype` is f32.
  virtual Tensor upload_weight_stacked(const std::vector<Tensor>& parts, DType dtype) = 0;
  virtual Tensor alloc_persistent(const Shape& shape, DType dtype) = 0;
  virtual Tensor alloc(const Shape& shape, DType dtype) = 0;  // from the workspace
  virtual size_t workspace_mark() const = 0;
  virtual void workspace_release(size_t mark) = 0;
  virtual size_t peak_bytes() const = 0;  // high-water mark of all device memory this backend took

  // Host <-> device copies (async on CUDA, ordered with the ops). dtype conversion where the two
  // differ (f32 host -> bf16 device, bf16 device -> f32 host).
  virtual void copy_from_host(const Tensor& host, Tensor& device_dst) = 0;
  virtual void copy_to_host(const Tensor& device_src, Tensor& host_dst) = 0;
  virtual void synchronize() = 0;
  // A copy to the host collected later: begin_read starts it, ordered with the ops, and returns a
  // ticket; end_read waits for that copy and fills host_dst (same dtype and size). Work queued in
  // between runs while the host waits, so the device never idles while the host reads a result
  // (the decode loop reads token i while step i + 1 runs). Small tensors (kReadBytes at most); a
  // ticket is ended at most once, and expires when kPendingReads later ones have begun (so an
  // abandoned one costs nothing). The default copies at once (a backend whose ops have finished
  // when they return); CUDA copies into pinned memory.
  static constexpr int kPendingReads = 4;
  static constexpr size_t kReadBytes = 256;
  virtual int64_t begin_read(const Tensor& device_src);
  virtual void end_read(int64_t ticket, Tensor& host_dst);
  // A copy to the host that captured work makes (Backend::run_captured): publish_row copies row
  // row[0] of `table` (a row of at most kReadBytes) into a host-visible mailbox tagged tag[0]
  // (row, tag: I32 device tensors [1]), off the path of the ops queued after it;
  // wait_published(tag, host_dst) waits for the row tagged `tag`. A decode step publishes the
  // token it consumes this way, tagged with its step number, so no copy of the host's own sits
  // between two steps. A row is kept until the next kPendingReads tags have arrived.
  virtual void publish_row(const Tensor& table, const Tensor& row, const Tensor& tag);
  virtual void wait_published(int64_t tag, Tensor& host_dst);

  // Runs the ops `enqueue` issues. A backend with graphs (CUDA) records them the first time `key`
  // is seen and from then on replays the recording without calling `enqueue`: valid because those
  // ops read everything that varies from device tensors, and the workspace is at the same mark
  // each time. Host-side bookkeeping therefore never goes inside `enqueue`.
  virtual void run_captured(int key, const std::function<void()>& enqueue) { enqueue(); }
  // Whether run_captured records and replays (rather than running `enqueue` each time): what makes
  // padding work up to a captured shape pay.
  virtual bool replays_captures() const { return false; }
  // Batch invariance: every op computes each row the same way whatever other rows share the call
  // (one product algorithm for every row count, norms summed in one order, attention without
  // per-shape kernel choices), so that a sequence's logits do not depend on the sequences batched
  // with it. Slower than the fastest kernel for each shape; set before the model is built. A
  // backend overriding it calls this one too.
  virtual void set_batch_invariant(bool on) { batch_invariant_ = on; }
  bool batch_invariant() const { return batch_invariant_; }

  // Prepares products with weight `w` (and a bias or not) for every M up to max_rows, so that
  // the first request of a new length does not pay for it (CUDA: cuBLASLt's algorithm choice,
  // ~3 ms per new shape). Called at warm-up; a backend with nothing to prepare ignores it.
  virtual void prepare_linear(const Tensor& w, bool bias, DType out_dtype, int64_t max_rows) {}
  // The same for linear_residue_first's products with weight w (and a bias) over k columns.
  virtual void prepare_linear_residue_first(const Tensor& w, int64_t k, int64_t max_rows) {}
  // The same for linear_rope_qkv's products with stacked weight w_qkv (and its bias), whose first
  // q_rows rows are the query projection and the rest the key and value projections, halves.
  virtual void prepare_linear_rope_qkv(const Tensor& w_qkv, QkvProducts products, int64_t q_rows,
                                       int64_t max_rows) {
    prepare_linear(w_qkv, true, compute_dtype(), max_rows);
  }

  // A hint that the next ops read `weight`: a backend that can start bringing it closer (CUDA: into
  // L2, on a side branch) while the ops before them run does so. Results never depend on it.
  virtual void prefetch(const Tensor& weight) {}

  // ---- streamed weights (backend/streamed_weights.h): the memory plan's "stream" placement.
  // Takes `slots` device buffers of slot_bytes each and host_bytes of host memory (pinned on
  // CUDA) for the streamed groups, beside reserve()'s regions, before any group is uploaded.
  virtual void reserve_streaming(size_t slot_bytes, int slots, size_t host_bytes);
  // Uploads of one group, into host memory; the tensors address the group's slot.
  void begin_streamed_group(int sequence) { streamed_.begin_group(sequence); }
  Tensor upload_streamed(const std::vector<Tensor>& parts, DType dtype) {
    return streamed_.add(parts, dtype);
  }
  int end_streamed_group() { return streamed_.end_group(); }
  // A pass over a sequence's groups, in order, each once:
  //   begin_streamed_pass(sequence);
  //   for each group g: use_streamed_group(g); <the ops reading g>; streamed_group_done(g);
  // begin starts copying the sequence's first groups into their slots; use makes the ops after
  // it wait for g's bytes; done frees g's slot for the group `slots` places later, whose copy
  // starts at once (CUDA: on a copy stream, while the ops of the groups between run). Every copy
  // a pass starts is waited for within the pass, so a captured decode step holds its copies. The
  // defaults, for a backend whose ops have finished when they return (the CPU), copy the group
  // in use_streamed_group.
  virtual void begin_streamed_pass(int sequence) {}
  virtual void use_streamed_group(int group);
  virtual void streamed_group_done(int group) {}
  // Bytes reserve_streaming took on the device (slots) and on the host.
  size_t streaming_device_bytes() const {
    return streamed_.slot_bytes() * size_t(streamed_.slots());
  }
  size_t streaming_host_bytes() const { return streamed_.host_bytes(); }

  // Names the phase the next ops belong to ("vision", "prefill", "decode"), for a backend that
  // profiles its ops (CUDA with QWENVL_PROFILE_OPS=1 prints one table per phase); others ignore it.
  virtual void profile_section(const std::string& name) {}

  // ---- ops
  // out[M,N] = x[M,K] · w[N,K]^T (+ bias[N]). out may be f32 even when activations are not
  // (logits). x and out are compute_dtype (or f32 for out).
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) = 0;
  // Two products that round as the reference's kernels (transformers on CUDA) do, for the
  // products where a bf16/fp16 backend's usual kernels would round differently and, through
  // many random-weight layers, end far from the reference. Both default to linear (a backend
  // computing in fp32 gains nothing from the order).
  // linear without bias, each output's fp32 sum taken in increasing K: the order of the implicit
  // GEMM that cuDNN runs for transformers' patch-embedding Conv3d.
  virtual void linear_in_order(const Tensor& x, const Tensor& w, Tensor& out);
  // linear over x's and w's K columns holding k columns laid out ResidueFirst{k} (K = its
  // width): rounds as transformers' product over the k columns of a reference_rows-row matrix
  // does, which cuBLAS may compute in slices of K summed in the output dtype (the vision MLP's
  // down projection, k = 3420).
  virtual void linear_residue_first(const Tensor& x, const Tensor& w, const Tensor* bias, int64_t k,
                                    int64_t reference_rows, Tensor& out);
  // Workspace elements (compute dtype) linear_residue_first may take for x [rows, K] and n
  // outputs, at most, whatever the backend.
  static int64_t linear_residue_first_workspace(int64_t rows, int64_t n, int64_t k);
  // out = x / rms(x) * w over the last dimension, statistics in fp32.
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) = 0;
  // residual += delta; out = rms_norm(residual, w, eps). The decoder's pre-norm step in one pass.
  virtual void add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps,
                            Tensor& out) = 0;
  // A sublayer's output joining the residual stream, and the next sublayer's norm, in one op:
  // delta = x · wᵀ; residual += delta; normed = rms_norm(residual, norm_w, eps). delta holds the
  // product on the way. The fused ops here (this, linear_swiglu, linear_rope_qkv) default to
  // their composition from the plain ops (backend.cpp); a backend overrides what it fuses.
  virtual void linear_add_rms_norm(const Tensor& x, const Tensor& w, Tensor& residual,
                                   const Tensor& norm_w, float eps, Tensor& delta, Tensor& normed);
  virtual void add(Tensor& a, const Tensor& b) = 0;  // a += b
  // The SwiGLU of a fused gate/up projection: gate_up [rows, 2f] holds each row's gate values
  // then its up values; out[r, j] = silu(gate_up[r, j]) * gate_up[r, f + j], out [rows, f].
  virtual void swiglu(const Tensor& gate_up, Tensor& out) = 0;
  // The SwiGLU MLP's first half: out [M, f] = swiglu(x · w_gate_upᵀ (+ bias)), w_gate_up [2f, K]
  // stacked gate then up. gate_up [M, 2f] holds the product on the way; a backend that fuses the
  // activation into the product (the CUDA decode path) leaves it unwritten.
  virtual void linear_swiglu(const Tensor& x, const Tensor& w_gate_up, const Tensor* bias,
                             Tensor& gate_up, Tensor& out);
  virtual void gelu(Tensor& x) = 0;  // exact (erf) GELU, in place
  // Attention's rotary step on a fused projection. qkv [tokens, (hq + 2·hkv)·head_dim] holds each
  // token's hq query heads, then hkv key heads, then hkv value heads. Writes the rotated queries
  // to q [tokens, hq, head_dim], and the rotated keys and the values to rows slots[i] of k and v
  // [rows, hkv, head_dim] (the KV cache), or to row i when slots is undefined. positions: I32
  // [position rows, tokens] on the device (see RopeSpec).
  virtual void rope_qkv(const Tensor& qkv, const Tensor& positions, const RopeSpec& spec,
                        const Tensor& slots, Tensor& q, Tensor& k, Tensor& v) = 0;
  // Attention's input in one op: qkv = x · w_qkvᵀ + b_qkv, then rope_qkv. qkv holds the product
  // on the way; a backend that rotates inside the product (the CUDA decode path) leaves it
  // unwritten.
  virtual void linear_rope_qkv(const Tensor& x, const Tensor& w_qkv, const Tensor& b_qkv,
                               QkvProducts products, const Tensor& positions, const RopeSpec& spec,
                               const Tensor& slots, Tensor& qkv, Tensor& q, Tensor& k, Tensor& v);
  // out[nq, heads_q, d] = softmax(q·kᵀ·scale + mask)·v within each segment; grouped-query:
  // heads_q is a multiple of heads_kv, query head h reads kv head h / (heads_q / heads_kv).
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v,
                         const AttentionSegments& segments, Tensor& out) = 0;
  // out[i] = src[indices[i]] (embedding lookup, window reordering); src may be a weight of
  // another dtype, converted to out's dtype. indices: I32 device tensor.
  virtual void gather_rows(const Tensor& src, const Tensor& indices, Tensor& out) = 0;
  // dst[indices[i]] = src[i] (image embeddings into the prompt, new keys into the KV cache).
  virtual void scatter_rows(const Tensor& src, const Tensor& indices, Tensor& dst) = 0;
  // values[i] += 1 for an I32 tensor: a captured decode step advances its own inputs (positions,
  // cache slot, key count, step number) for the next replay, so no upload stands between steps.
  virtual void increment(Tensor& values) = 0;
  // Picks the next token from f32 logits [vocab]: greedy or sampled with `params`, using the
  // uniform draw `uniform` in [0, 1) (drawn by the caller, so every backend picks the same token).
  // history: I32 device tensor of token ids for the repetition penalty (may be empty).
  // Writes the id into next_token (I32 device tensor [1]); logits may be modified in place.
  virtual void sample(Tensor& logits, const Tensor& history, const SamplingParams& params,
                      float uniform, Tensor& next_token) = 0;
  // Many sequences' rows at once (a batched pass), logits f32 [rows, vocab]:
  // penalize_repeats applies sample()'s repetition rule to row r's ids ids[offsets[r],
  // offsets[r + 1]) (I32, distinct within a row; offsets I32 [rows + 1]) with penalties[r] (F32
  // [rows]), each id once; argmax_rows writes each row's greedy pick (sample() at temperature 0)
  // into next_tokens (I32 [rows]). All device tensors.
  virtual void penalize_repeats(Tensor& logits, const Tensor& ids, const Tensor& offsets,
                                const Tensor& penalties) = 0;
  virtual void argmax_rows(const Tensor& logits, Tensor& next_tokens) = 0;

 protected:
  StreamedWeights streamed_;
  bool batch_invariant_ = false;
  // begin_read's bookkeeping: ticket t uses slot t % kPendingReads.
  int64_t open_read(const Tensor& device_src);  // checks the size, returns the next ticket
  int close_read(int64_t ticket, const Tensor& host_dst);  // checks it, returns its slot
  // publish_row's checks of what the host can see (shapes, dtypes); returns the row's bytes.
  size_t check_publish(const Tensor& table, const Tensor& row, const Tensor& tag);

 private:
  struct PendingRead {
    int64_t ticket = -1;  // -1: free
    DType dtype = DType::F32;
    int64_t numel = 0;
  };
  std::array<PendingRead, kPendingReads> reads_{};
  std::array<Tensor, kPendingReads> read_values_{};  // the default begin_read's copies
  int64_t next_read_ = 0;
  struct Published {
    int64_t tag = -1;  // -1: none
    Tensor value;
  };
  std::array<Published, kPendingReads> published_{};  // the default publish_row's copies
  std::shared_ptr<char> streaming_memory_;  // the default reserve_streaming's host and slots
};

// The backend for `device` ("cpu", "cuda", "auto"), defined in runtime/backend_factory.cpp, the one
// place that knows every backend: auto picks CUDA when a GPU is present.
// `threads` sizes the CPU thread pool (0: all cores). Throws Error if the device is unavailable.
std::unique_ptr<Backend> make_backend(const std::string& device, DType cuda_dtype, int threads);
// The free memory of each GPU this process can use, in ordinal order (also in
// runtime/backend_factory.cpp); empty when qwenvl was built without CUDA or there is no GPU.
std::vector<int64_t> gpu_free_memory();

// Bandwidths measured on this machine, bytes per second (also in runtime/backend_factory.cpp).
struct GpuBandwidths {
  double memory = 0;          // device memory, read and write together (a device-to-device copy)
  double host_to_device = 0;  // pinned host memory to the device
};
// GPU 0's name ("NVIDIA H200"); empty without CUDA or a GPU.
std::string gpu_name();
// GPU 0's, from a quick probe (~0.3 s); nullopt without CUDA or a GPU.
std::optional<GpuBandwidths> measure_gpu_bandwidths();
// The host memory the CPU backend's threads read, from a quick probe (~0.3 s).
double measure_host_read_bandwidth();

}  // namespace qwenvl
