#pragma once
// Qwen2_5_VLForConditionalGeneration for one sequence at a time: the vision tower, the decoder
// and the memory they need, planned before anything is uploaded, on one backend or, as a
// WeightPlacement says, on several (a GPU and the CPU): the vision tower on one, the decoder's
// parts as stages of a pipeline (Decoder).
//
// Use: construct (reserves memory, uploads weights, allocates the KV cache); then per request
//   marks = workspace_marks();
//   embeds = encode_images(images);            // all images of the prompt, in order
//   prefill(ids, rope_index(ids, ...), embeds)  // logits() holds the last position's logits
//   release_workspaces(marks);
//   decode_step(token) ...                      // logits() again
// or, with the token left on the device by Backend::sample in next_token(), decode_next().
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/rope_index.h"
#include "model/vision_tower.h"
#include "model/weight_placement.h"

namespace qwenvl {

struct ModelLimits {
  int64_t max_context = 32768;   // tokens of prompt + generation
  int64_t prefill_chunk = 2048;  // tokens per prefill pass (bounds the workspace)
  // Patches of the largest single image (0: no images); a video with more runs in pieces of
  // whole temporal patches that fit (VisionTower::encode).
  int64_t max_image_patches = 0;
  int64_t max_image_tokens = 0;            // merged tokens of all images of one request
  int64_t vision_chunk_rows = kChunkRows;  // patches a vision block processes at once
  // Continuous batching (Qwen25VL::forward_batch): the sequences one pass may hold, and the
  // tokens of the KV cache they share (0: max_context; at least max_context, whole blocks).
  int max_sequences = 1;
  int64_t kv_cache_tokens = 0;
};

// Rows of the KV cache per block when many sequences share it (block tables).
constexpr int kKvBlockSize = 64;
// The most rows one decoder pass runs: a prefill chunk, for one sequence no longer than its
// context; a batched pass (max_sequences > 1) may hold a chunk of several prompts' rows.
int64_t pass_rows(const ModelLimits& limits);
// The KV cache's rows for `limits`: whole blocks, at least max_context; with max_sequences > 1
// one block more, the padding block of padded batched passes (model/batch_step.h), which no
// sequence is given.
int64_t kv_cache_capacity(const ModelLimits& limits);

struct MemoryPlan {
  size_t weight_bytes = 0;      // resident weights
  size_t persistent_bytes = 0;  // KV cache, logits, sampling state
  size_t workspace_bytes = 0;
  // Streamed weights (WeightPlacement): their host copies, and the device buffers (slots) they
  // take in turn, each the size of the largest streamed group.
  size_t streamed_host_bytes = 0;
  size_t stream_slot_bytes = 0;
  int stream_slots = 0;
  size_t device_bytes() const {
    return weight_bytes + persistent_bytes + workspace_bytes +
           stream_slot_bytes * size_t(stream_slots);
  }
};

// The pieces of a MemoryPlan that the runtime's memory planner places device by device (the
// one formula for each, so the two plans cannot drift):
// one decoder layer's keys and values for max_context tokens, in `dtype`;
size_t kv_cache_layer_bytes(const TextConfig& config, int64_t max_context, DType dtype);
// logits, the sampled token, the sampler's id history and a decode step's inputs, and the
// logits, tokens, repeated ids (Qwen25VL::batch_repeats) and padded decode inputs of batches of
// max_sequences sequences;
size_t sampling_state_bytes(const TextConfig& config, const ModelLimits& limits);
// the image embeddings a request's images leave in the workspace.
size_t image_embedding_bytes(const TextConfig& config, int64_t image_tokens, DType dtype);

struct ImageInput {
  Tensor pixel_values;  // f32 host [patches, 1176]
  VisionGrid grid;
};

// The embedding rows an image or video of `grid` gives: its patches, merged in squares of
// spatial_merge_size² (one prompt pad token each).
inline int64_t embedding_rows(const VisionConfig& vision, const VisionGrid& grid) {
  return grid.patches() / (int64_t(vision.spatial_merge_size) * vision.spatial_merge_size);
}

class Qwen25VL {
 public:
  // placement: which weights stream (default: all resident). progress: called as weights load,
  // with the checkpoint bytes read so far and their total.
  using LoadProgress = std::function<void(size_t read_bytes, size_t total_bytes)>;
  Qwen25VL(const ModelConfig& config, const Checkpoint& checkpoint, Backend& backend,
           const ModelLimits& limits, const WeightPlacement& placement = {},
           const LoadProgress& progress = {});
  // On backends[i] for the placement's index i (every index the placement names).
  Qwen25VL(const ModelConfig& config, const Checkpoint& checkpoint,
           const std::vector<Backend*>& backends, const ModelLimits& limits,
           const WeightPlacement& placement, const LoadProgress& progress = {});

  static MemoryPlan plan(const ModelConfig& config, const Checkpoint& checkpoint, DType compute,
                         const ModelLimits& limits, const WeightPlacement& placement = {});
  // One plan per backend of the placement, computes[i] being backend i's compute dtype.
  static std::vector<MemoryPlan> plans(const ModelConfig& config, const Checkpoint& checkpoint,
                                       const std::vector<DType>& computes,
                                       const ModelLimits& limits, const WeightPlacement& placement);
  // The workspace of plan(): the image embeddings, then the larger of the vision tower's and a
  // prefill chunk's.
  static size_t workspace_bytes(const ModelConfig& config, DType compute,
                                const ModelLimits& limits);

  // Runs every kernel a request will need once, on throwaway inputs (a 4x4-patch image when the
  // limits allow images, a 16-token prompt, one decode step), so that one-time costs (module
  // loading, matrix-multiply plans, capturing the decode step) are paid at load time rather than
  // in the first token. Leaves the cache empty and the workspace as it found it.
  void warm_up();

  // [total image tokens, hidden] in image_backend()'s workspace, images concatenated in order
  // (each image is encoded on its own: its attention never crosses into another image, so this
  // equals transformers' batched call). A video larger than limits.max_image_patches is encoded
  // in pieces of whole temporal patches, with the same result.
  Tensor encode_images(const std::vector<ImageInput>& images);

  // Starts a new sequence: clears the cache and runs the prompt in chunks. image_embeds (may be
  // null when the prompt has no images or videos) replace the <|image_pad|> and <|video_pad|>
  // tokens in order (encode_images of the images and videos in prompt order).
  void prefill(const std::vector<int32_t>& ids, const MropePositions& positions,
               const Tensor* image_embeds);
  // Appends the token in next_token() (where Backend::sample leaves it) at the next cache
  // position, its M-RoPE position continuing with the prompt's rope_delta, and to history() at
  // the same index. The decoder's device work is captured once and replayed
  // (Backend::run_captured); each replay leaves the device's step inputs (positions, slot) ready
  // for the next, so only the first step after a prefill uploads them. The token never needs the
  // host: a caller can queue this step before it knows the token, which the step publishes
  // (Backend::publish_row) under the tag it returns: Backend::wait_published(tag) reads it.
  // pick_greedily: the step ends by putting the argmax of its logits in next_token() (what
  // Backend::sample does at temperature 0 without a repetition penalty: a rule with no per-step
  // input, so it can be part of the replayed work), ready for the next step.
  int64_t decode_next(bool pick_greedily = false);
  // decode_next() for a token given by the host.
  void decode_step(int32_t token);

  // Continuous batching: rows of several sequences in one pass (Decoder::forward with a batch),
  // their keys placed by the caller in blocks of kKvBlockSize cache rows (runtime/kv_blocks.h
  // hands the blocks out, kv_cache_blocks() of them; this class's own prefill and decode steps
  // are not to be mixed in). The logits of batch.logit_rows (at most max_sequences; none: no
  // logits) go to batch_logits()'s first rows. A decode pass (model/batch_step.h) on a backend
  // that replays captures is padded to a bucket of rows and runs as a captured graph, one per
  // bucket and table width.
  void forward_batch(const DecoderBatch& batch);
  // Whether decode passes are padded and captured (default: where the backend replays captures);
  // tests turn it on to run the padded form on the CPU.
  void pad_decode_batches(bool on) { pad_decode_batches_ = on; }
  Tensor& batch_logits() { return batch_logits_; }  // f32 [max_sequences, vocab] on backend()
  Tensor& batch_tokens() { return batch_tokens_; }  // I32 [max_sequences], for Backend::sample
  // Where a batch's repetition penalties go (Backend::penalize_repeats): the distinct ids of
  // each sequence, which number at most its cached tokens plus one.
  struct BatchRepeats {
    Tensor ids;        // I32 [kv_cache_capacity + max_sequences]
    Tensor offsets;    // I32 [max_sequences + 1]
    Tensor penalties;  // F32 [max_sequences]
  };
  BatchRepeats& batch_repeats() { return batch_repeats_; }
  int64_t kv_cache_blocks() const {
    return cache_.capacity() / kKvBlockSize - (limits_.max_sequences > 1 ? 1 : 0);
  }
  const ModelLimits& limits() const { return limits_; }

  // On backend(): logits, sampling and the tokens decode steps publish.
  Tensor& logits() { return logits_; }          // f32 [vocab] of the last token run
  Tensor& next_token() { return next_token_; }  // I32 [1], for Backend::sample
  Tensor& history() { return history_; }        // I32 [max_context], for Backend::sample
  // See Decoder::set_activation_tap; for prefill only.
  void set_activation_tap(Decoder::ActivationTap tap) {
    decoder_->set_activation_tap(std::move(tap));
  }
  const KvCache& cache() const { return cache_; }
  const ModelConfig& config() const { return config_; }
  int64_t max_context() const { return limits_.max_context; }
  // The backend of lm_head: logits, sampling, published tokens.
  Backend& backend() { return *backends_[size_t(placement_.head_backend)]; }
  // The backend encode_images leaves its embeddings on (the token embedding's).
  Backend& image_backend() { return *backends_[size_t(placement_.embed_backend)]; }
  // Every backend's workspace mark, and their release: what a request's images and prefill took.
  std::vector<size_t> workspace_marks() const;
  void release_workspaces(const std::vector<size_t>& marks);
  void synchronize();                             // every backend
  void profile_section(const std::string& name);  // every backend (Backend::profile_section)

 private:
  // A decode step's device state on one stage's backend (see decode_next).
  struct StageState {
    Tensor step_inputs;  // I32 [kStepInputs]
    Tensor token;        // I32 [1]: the token, for an embedding stage apart from the sampler's
    Tensor x, normed;    // [1, hidden]: the residual stream handed between stages
  };
  Backend& vision_backend() { return *backends_[size_t(placement_.vision_backend)]; }
  ModelConfig config_;
  std::vector<Backend*> backends_;
  WeightPlacement placement_;
  ModelLimits limits_;
  std::optional<VisionTower> vision_;
  std::optional<Decoder> decoder_;
  KvCache cache_;
  Tensor logits_, next_token_, history_;
  Tensor batch_logits_, batch_tokens_;
  BatchRepeats batch_repeats_;
  // A padded decode pass's inputs (BatchStepLayout of max_sequences rows and the widest table),
  // on backend() and their host staging; and backend()'s workspace mark when nothing is held in
  // it, where padded passes are recorded and replayed.
  Tensor batch_step_inputs_, batch_step_host_;
  size_t idle_workspace_mark_ = 0;
  bool pad_decode_batches_ = false;
  bool forward_padded_decode(const DecoderBatch& batch);
  void upload_step_inputs(int64_t slot);
  std::vector<StageState> stage_state_;  // per decoder stage
  Tensor host_x_, host_normed_;          // f32 [1, hidden]: a decode step's hand-over
  int64_t device_inputs_slot_ = -1;      // the slot the step inputs hold the inputs of; -1: none
  int64_t step_number_ = 0;              // of the next decode step
  int64_t rope_delta_ = 0;
};

}  // namespace qwenvl
