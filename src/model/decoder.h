#pragma once
// Qwen2.5-VL's language model (transformers' Qwen2_5_VLTextModel + lm_head): token embeddings
// with image embeddings in place of the pad tokens, pre-norm decoder layers (GQA attention with
// q/k/v biases and M-RoPE, SwiGLU MLP), final RMSNorm, and logits for the last position only.
// Its parts may run on several backends (a GPU and the CPU, say): a pass goes through them in
// forward order as stages, handing the residual stream from one backend to the next.
#include <cstdint>
#include <functional>
#include <vector>

#include "backend/backend.h"
#include "checkpoint/config.h"
#include "model/kv_cache.h"
#include "model/weight_loader.h"
#include "model/weight_placement.h"

namespace qwenvl {

struct DecoderLayerWeights {
  Tensor input_norm, post_attention_norm;  // [hidden]
  // q_proj, k_proj and v_proj stacked: [(heads + 2·kv_heads)·head_dim, hidden] and its bias.
  Tensor qkv_w, qkv_b;
  Tensor o_w;        // [hidden, heads·head_dim], no bias
  Tensor gate_up_w;  // gate_proj then up_proj: [2·intermediate, hidden]
  Tensor down_w;     // [hidden, intermediate]
  // The norm the layer ends with, on the layer's backend: the next layer's input_layernorm (the
  // same tensor when that layer runs on the same backend), or model.norm after the last layer.
  Tensor next_norm;
  int streamed_group = -1;  // Backend's streamed group holding the layer, -1: resident
};

struct DecoderWeights {
  Tensor embed_tokens;  // [vocab, hidden]
  Tensor embed_norm;    // layer 0's input_layernorm, on the embedding's backend
  std::vector<DecoderLayerWeights> layers;
  Tensor lm_head;  // [vocab, hidden]; the embedding matrix itself when tied and on its backend
};

// loaders[b] uploads to backend b of placement (WeightPlacement's indices). The layers
// placement.streams_layer() names are streamed groups of kDecoderLayerSequence.
DecoderWeights load_decoder_weights(const TextConfig& config,
                                    const std::vector<WeightLoader*>& loaders,
                                    const WeightPlacement& placement);
// Every part on one backend.
DecoderWeights load_decoder_weights(const TextConfig& config, WeightLoader& loader,
                                    const WeightPlacement& placement = {});

// Consecutive parts of a forward pass that run on one backend.
struct DecoderStage {
  int backend_index = 0;  // in the placement
  Backend* backend = nullptr;
  bool embeds = false;                 // starts with the token embedding (the first stage)
  int first_layer = 0, end_layer = 0;  // the decoder layers [first, end) it runs
  bool head = false;                   // ends with lm_head (the last stage)
};
// The embedding, the layers and lm_head of `placement` in forward order, grouped into stages
// where consecutive parts share a backend (backends: the placement's, by index; empty for a
// planning pass, which leaves DecoderStage::backend null). One stage when every part is on one
// backend.
std::vector<DecoderStage> decoder_stages(const TextConfig& config, const WeightPlacement& placement,
                                         const std::vector<Backend*>& backends);

// Image embeddings that replace some of a chunk's tokens: rows [first_row, first_row + count) of
// `embeddings` go, in order, to the chunk positions listed in `chunk_positions`.
struct ChunkImageRows {
  const Tensor* embeddings = nullptr;  // [image tokens, hidden] on the device
  int64_t first_row = 0;
  std::vector<int32_t> chunk_positions;
};

// A chunk's inputs, already on the device, for Decoder::run.
struct DecoderInputs {
  Tensor ids;                  // I32 [n]
  Tensor positions;            // I32 [3, n]: M-RoPE t, h, w rows
  Tensor slots;                // I32 [n]: cache rows the chunk's keys and values go to
  AttentionSegments segments;  // the chunk's queries against the cache, causal
  // Image embeddings that replace tokens of the chunk (none, or one set per sequence with image
  // rows in it), and the I32 chunk rows each set goes to.
  std::vector<Tensor> image_rows, image_slots;
  // I32 [r]: the rows whose logits lm_head computes, into logits [r, vocab]; undefined: the last
  // row's, into logits [vocab].
  Tensor logit_rows;
  // How the q/k/v projections multiply: as the checkpoint's three layers (rounding as
  // transformers does), or, for rows of several sequences, as one product (qkv_products_for).
  QkvProducts qkv = QkvProducts::kPerProjection;
};

// The q/k/v products of a pass over `sequences` sequences: one sequence's rows round as
// transformers' three projections do; rows of several take one product of the stacked weight
// (faster, and batched rows round by their company anyway), unless the backend is batch
// invariant, where a row must round the same alone and in company.
QkvProducts qkv_products_for(int sequences, const Backend& backend);

// One pass over rows of several sequences (continuous batching), described on the host: sequence
// s owns rows [cu_q[s], cu_q[s+1]) and sees keys 0 .. cu_k[s+1] - cu_k[s] - 1 of its own, the
// last of them its new rows (causal, bottom-right). Its keys live in the cache's rows through
// the block table (AttentionSegments::block_table) or, without one, in consecutive rows from
// cu_k[s].
struct DecoderBatch {
  std::vector<int32_t> ids;        // [n]
  std::vector<int32_t> positions;  // [3, n]: M-RoPE t, h, w rows
  std::vector<int32_t> slots;      // [n]: the cache rows the rows' keys and values go to
  std::vector<int32_t> cu_q, cu_k;
  std::vector<int32_t> block_table;  // [sequences, table_stride]; empty: consecutive keys
  int table_stride = 0, block_size = 0;
  int max_k = 0;  // a bound on every sequence's keys, for sizing launches
  // Rows whose logits are wanted, in order: logits [count, vocab]. Empty: the last row's.
  std::vector<int32_t> logit_rows;
  std::vector<ChunkImageRows> images;  // chunk_positions index the batch's rows
};

class Decoder {
 public:
  // stages: decoder_stages() of the placement the weights were loaded for.
  Decoder(const TextConfig& config, DecoderWeights weights, std::vector<DecoderStage> stages);

  // Runs `ids` as the tokens at cache positions [cache.length(), + ids.size()), with M-RoPE
  // positions [3][ids.size()] (t, h, w rows), stage by stage. Appends their keys and values to
  // the cache and writes the f32 logits of the last token into *logits ([vocab], on the last
  // stage's backend, allocated by the caller); null for a prefill chunk that only fills the cache
  // (not the prompt's last). Image embeddings are on the first stage's backend.
  void forward(KvCache& cache, const std::vector<int32_t>& ids,
               const std::vector<int32_t>& positions, const ChunkImageRows* images, Tensor* logits);
  // Rows of several sequences whose keys the caller placed (the cache's length is not used):
  // writes the logits of batch.logit_rows into *logits ([rows, vocab], f32) when not null.
  void forward(KvCache& cache, const DecoderBatch& batch, Tensor* logits);
  // forward()'s checks of a batch: its shape, token ids within the vocabulary, cache slots
  // within the cache.
  void check(const KvCache& cache, const DecoderBatch& batch) const;

  // One stage's device work, reading every varying input from device tensors on its backend:
  // what a decode step captures once as a graph and replays. The caller has advanced the cache
  // length and uploaded `inputs` (ids and image rows: for the embedding's stage; positions,
  // slots and segments: for a stage with layers). x and normed [n, hidden] carry the residual
  // stream and its norm: written by the embedding, read and left for the next stage by layers.
  void run_stage(const DecoderStage& stage, KvCache& cache, const DecoderInputs& inputs, Tensor& x,
                 Tensor& normed, Tensor* logits);
  // run_stage of the one stage of a decoder on one backend, with x and normed in the workspace.
  void run(Backend& backend, KvCache& cache, const DecoderInputs& inputs, Tensor* logits);

  // Lets each stage's backend prepare the matrix products of chunks of up to max_tokens tokens
  // (and, with `batches`, those of passes over several sequences).
  void prepare(int64_t max_tokens, bool batches) const;

  const std::vector<DecoderStage>& stages() const { return stages_; }

  // Workspace forward() needs for `tokens` tokens at once.
  static size_t workspace_bytes(const TextConfig& config, int64_t tokens, DType dtype);

  const TextConfig& config() const { return config_; }

  // Called in forward() with the last token's row of each step's activations (on `backend`), for
  // comparing them with another implementation op by op: step 0 the embedding; for layer l, step
  // 3l + 1 the attention's output (o_proj's input), 3l + 2 the residual stream after attention,
  // 3l + 3 after the MLP. Empty: none (the default; a decode step must not have one, a tap copies
  // to the host).
  using ActivationTap = std::function<void(int step, Backend& backend, const Tensor& row)>;
  void set_activation_tap(ActivationTap tap) { tap_ = std::move(tap); }

 private:
  // Runs layer `w` on the residual stream x, given normed = its input_layernorm(x); leaves
  // normed = next_norm(x) for the next layer (or the final norm).
  void layer(Backend& backend, int index, const DecoderLayerWeights& w, Tensor& k_cache,
             Tensor& v_cache, Tensor& x, Tensor& normed, const Tensor& next_norm,
             const DecoderInputs& in);

  TextConfig config_;
  DecoderWeights weights_;
  std::vector<DecoderStage> stages_;
  RopeSpec rope_;
  ActivationTap tap_;
};

}  // namespace qwenvl
