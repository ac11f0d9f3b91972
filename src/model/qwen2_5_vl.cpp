#include "model/qwen2_5_vl.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qwenvl {

namespace {

KvCacheShape cache_shape(const TextConfig& t, int64_t max_context) {
  return {t.num_hidden_layers, t.num_key_value_heads, t.head_dim, max_context};
}

// Logits, the sampled token and the id history the sampler's repetition penalty reads.
// Layout of a decode step's inputs in step_inputs_ (the token itself is next_token_): cu_q {0, 1}
// and cu_k {0, cache length} of the one attention segment, its three M-RoPE positions, its cache
// slot, its step number (the tag of the token it publishes). From cu_k's second entry on, each
// step's values are the last one's plus one, which the captured step applies itself
// (kAdvancing).
enum StepInput { kCuQ = 0, kCuK = 2, kPositions = 4, kSlot = 7, kStepNumber = 8, kStepInputs = 9 };
constexpr int64_t kAdvancing = kCuK + 1;
// Decode steps are captured graphs: while the context is at most kShortContextKeys keys,
// attention's launch bound is that many keys instead of the cache's capacity, so a backend can
// size its attention for a short context (CUDA: a different kernel up to 1,024 keys). Each comes
// with and without the greedy pick at its end. Warm-up records the short ones; the first step
// past it records the others (a few milliseconds, once).
constexpr int kDecodeStepGraph = 1;
constexpr int kShortDecodeStepGraph = 2;
constexpr int kGreedyGraphOffset = 2;
constexpr int64_t kShortContextKeys = 1024;
// Step numbers wrap before they leave the I32 they travel in.
constexpr int64_t kStepNumbers = int64_t(1) << 31;

// Counts the weights as the constructor loads them: resident bytes, streamed groups.
WeightLoader count_weights(const ModelConfig& config, const Checkpoint& checkpoint, DType compute,
                           const WeightPlacement& placement) {
  WeightLoader counter(checkpoint, nullptr, compute, config.quantization);
  load_vision_weights(config.vision, counter, placement.stream_vision_blocks);
  load_decoder_weights(config.text, counter, placement);
  return counter;
}

}  // namespace

size_t sampling_state_bytes(const TextConfig& t, int64_t max_context) {
  return size_t(t.vocab_size) * sizeof(float) + sizeof(int32_t) +
         size_t(max_context) * sizeof(int32_t) + kStepInputs * sizeof(int32_t) +
         4 * kAllocationAlignment;
}

size_t kv_cache_layer_bytes(const TextConfig& t, int64_t max_context, DType dtype) {
  KvCacheShape layer = cache_shape(t, max_context);
  layer.layers = 1;
  // Keys and values are two allocations, each rounded up to the alignment.
  return layer.bytes(dtype) + 2 * kAllocationAlignment;
}

size_t image_embedding_bytes(const TextConfig& t, int64_t image_tokens, DType dtype) {
  return size_t(image_tokens) * size_t(t.hidden_size) * dtype_size(dtype);
}

size_t Qwen25VL::workspace_bytes(const ModelConfig& config, DType compute,
                                 const ModelLimits& limits) {
  // Image embeddings stay in the workspace while the vision tower encodes the next image and
  // while the decoder runs its chunks on top of them.
  const size_t embeds = image_embedding_bytes(config.text, limits.max_image_tokens, compute);
  const int64_t chunk = std::min(limits.prefill_chunk, limits.max_context);
  const size_t vision = limits.max_image_patches > 0
                            ? VisionTower::workspace_bytes(config.vision, limits.max_image_patches,
                                                           compute, limits.vision_chunk_rows)
                            : 0;
  return embeds + std::max(vision, Decoder::workspace_bytes(config.text, chunk, compute));
}

MemoryPlan Qwen25VL::plan(const ModelConfig& config, const Checkpoint& checkpoint, DType compute,
                          const ModelLimits& limits, const WeightPlacement& placement) {
  MemoryPlan p;
  const WeightLoader counted = count_weights(config, checkpoint, compute, placement);
  p.weight_bytes = counted.bytes();
  if (counted.streamed_bytes() > 0) {
    p.streamed_host_bytes = counted.streamed_bytes();
    p.stream_slot_bytes = counted.largest_group_bytes();
    p.stream_slots = placement.slots;
  }
  p.persistent_bytes = size_t(config.text.num_hidden_layers) *
                           kv_cache_layer_bytes(config.text, limits.max_context, compute) +
                       sampling_state_bytes(config.text, limits.max_context);
  p.workspace_bytes = workspace_bytes(config, compute, limits);
  return p;
}

Qwen25VL::Qwen25VL(const ModelConfig& config, const Checkpoint& checkpoint, Backend& backend,
                   const ModelLimits& limits, const WeightPlacement& placement,
                   const LoadProgress& progress)
    : config_(config), backend_(backend), limits_(limits) {
  if (limits.max_context < 1 || limits.prefill_chunk < 1 || limits.vision_chunk_rows < 1)
    fail("the context limit, prefill chunk and vision chunk must be positive");
  if (placement.slots < 2) fail("streamed weights need at least two device buffers");
  const MemoryPlan p = plan(config, checkpoint, backend.compute_dtype(), limits, placement);
  backend.reserve(p.weight_bytes, p.persistent_bytes, p.workspace_bytes);
  if (p.stream_slots > 0)
    backend.reserve_streaming(p.stream_slot_bytes, p.stream_slots, p.streamed_host_bytes);
  WeightLoader loader(checkpoint, &backend, backend.compute_dtype(), config.quantization);
  if (progress) {
    const size_t total = checkpoint.total_bytes();
    loader.set_progress([&progress, total](size_t read) { progress(read, total); });
  }
  vision_.emplace(config.vision,
                  load_vision_weights(config.vision, loader, placement.stream_vision_blocks),
                  limits.vision_chunk_rows);
  decoder_.emplace(config.text, load_decoder_weights(config.text, loader, placement));
  cache_ = KvCache(backend, cache_shape(config.text, limits.max_context));
  logits_ = backend.alloc_persistent({int64_t(config.text.vocab_size)}, DType::F32);
  next_token_ = backend.alloc_persistent({1}, DType::I32);
  history_ = backend.alloc_persistent({limits.max_context}, DType::I32);
  step_inputs_ = backend.alloc_persistent({kStepInputs}, DType::I32);
}

void Qwen25VL::warm_up() {
  vision_->prepare(backend_, limits_.max_image_patches);
  decoder_->prepare(backend_, std::min(limits_.prefill_chunk, limits_.max_context));
  const size_t mark = backend_.workspace_mark();
  const int64_t unit = config_.vision.spatial_merge_size;
  const int64_t side = 2 * unit;  // the smallest grid: one merged 2x2 block of merge units
  if (limits_.max_image_patches >= side * side) {
    const int64_t patch_dim = int64_t(config_.vision.in_channels) *
                              config_.vision.temporal_patch_size * config_.vision.patch_size *
                              config_.vision.patch_size;
    Tensor pixels = Tensor::empty({side * side, patch_dim}, DType::F32);
    std::fill(pixels.data<float>(), pixels.data<float>() + pixels.numel(), 0.0f);
    encode_images({ImageInput{pixels, VisionGrid{1, side, side}}});
    backend_.workspace_release(mark);
  }
  // 16 tokens: more than a matrix-vector product takes, so the matrix-multiply library is
  // initialised here too (its first call loads its kernels: ~0.1 s on CUDA).
  const int64_t warm_tokens = std::min<int64_t>(16, limits_.max_context - 1);
  if (warm_tokens >= 1) {
    std::vector<int32_t> ids(static_cast<size_t>(warm_tokens));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
    RopeIndexInputs text_only;
    text_only.tokens = {config_.image_token_id, config_.video_token_id};
    prefill(ids, rope_index(ids, text_only), nullptr);
    backend_.workspace_release(mark);
    decode_step(int32_t(warm_tokens));
    if (warm_tokens + 2 <= limits_.max_context) decode_next(true);  // and its greedy twin
  }
  backend_.synchronize();
  cache_.clear();
  device_inputs_slot_ = -1;
}

Tensor Qwen25VL::encode_images(const std::vector<ImageInput>& images) {
  const int64_t unit =
      int64_t(config_.vision.spatial_merge_size) * config_.vision.spatial_merge_size;
  int64_t tokens = 0;
  for (const ImageInput& image : images) tokens += image.grid.patches() / unit;
  Tensor out =
      backend_.alloc({tokens, int64_t(config_.text.hidden_size)}, backend_.compute_dtype());
  int64_t row = 0;
  for (const ImageInput& image : images) {
    const int64_t count = image.grid.patches() / unit;
    Tensor rows = out.rows(row, count);
    vision_->encode(backend_, image.pixel_values, image.grid, rows, limits_.max_image_patches);
    row += count;
  }
  return out;
}

void Qwen25VL::prefill(const std::vector<int32_t>& ids, const MropePositions& positions,
                       const Tensor* image_embeds) {
  const int64_t n = int64_t(ids.size());
  if (n == 0) fail("the prompt is empty");
  if (n > limits_.max_context)
    fail("the prompt has ", n, " tokens but the context holds ", limits_.max_context);
  QWENVL_CHECK(positions.length == n, "positions for ", positions.length, " of ", n, " tokens");
  std::vector<int32_t> pads;
  for (int64_t i = 0; i < n; ++i)
    if (ids[size_t(i)] == config_.image_token_id || ids[size_t(i)] == config_.video_token_id)
      pads.push_back(int32_t(i));
  const int64_t image_rows = image_embeds ? image_embeds->dim(0) : 0;
  if (int64_t(pads.size()) != image_rows)
    fail("the prompt has ", pads.size(), " image and video pad tokens but the images and videos",
         " give ", image_rows, " embeddings");

  cache_.clear();
  device_inputs_slot_ = -1;
  rope_delta_ = positions.rope_delta;
  size_t next_pad = 0;
  for (int64_t begin = 0; begin < n; begin += limits_.prefill_chunk) {
    const int64_t count = std::min(limits_.prefill_chunk, n - begin);
    std::vector<int32_t> chunk_ids(ids.begin() + begin, ids.begin() + begin + count);
    std::vector<int32_t> chunk_positions(size_t(3 * count));
    for (int row = 0; row < 3; ++row)
      for (int64_t i = 0; i < count; ++i)
        chunk_positions[size_t(row * count + i)] = int32_t(positions.at(row, begin + i));
    ChunkImageRows images;
    images.embeddings = image_embeds;
    images.first_row = int64_t(next_pad);
    while (next_pad < pads.size() && pads[next_pad] < begin + count)
      images.chunk_positions.push_back(pads[next_pad++] - int32_t(begin));
    // lm_head only after the prompt's last chunk: earlier chunks' logits are never read.
    decoder_->forward(backend_, cache_, chunk_ids, chunk_positions, &images,
                      begin + count == n ? &logits_ : nullptr);
  }
}

void Qwen25VL::decode_step(int32_t token) {
  if (token < 0 || token >= config_.text.vocab_size)
    fail("token id ", token, " is outside the vocabulary of ", config_.text.vocab_size);
  Tensor host = Tensor::empty({1}, DType::I32);
  host.data<int32_t>()[0] = token;
  backend_.copy_from_host(host, next_token_);
  decode_next(false);
}

void Qwen25VL::upload_step_inputs(int64_t slot) {
  const int32_t position = int32_t(decode_position(slot, rope_delta_));
  Tensor host = Tensor::empty({kStepInputs}, DType::I32);
  int32_t* v = host.data<int32_t>();
  v[kCuQ] = 0, v[kCuQ + 1] = 1;
  v[kCuK] = 0, v[kCuK + 1] = int32_t(slot + 1);
  v[kPositions] = v[kPositions + 1] = v[kPositions + 2] = position;
  v[kSlot] = int32_t(slot);
  v[kStepNumber] = int32_t(step_number_);
  backend_.copy_from_host(host, step_inputs_);
}

int64_t Qwen25VL::decode_next(bool pick_greedily) {
  const int64_t slot = cache_.length();
  cache_.set_length(slot + 1);  // Error before any work when the context is full
  // The last step left the device's inputs ready for this one, except after a prefill.
  if (device_inputs_slot_ != slot) upload_step_inputs(slot);
  const int64_t tag = step_number_;

  DecoderInputs in;
  in.ids = next_token_;
  in.positions = step_inputs_.rows(kPositions, 3).view({3, 1});
  in.slots = step_inputs_.rows(kSlot, 1);
  in.segments.cu_q = step_inputs_.rows(kCuQ, 2);
  in.segments.cu_k = step_inputs_.rows(kCuK, 2);
  in.segments.segments = 1;
  in.segments.max_q = 1;
  const bool short_context = slot + 1 <= kShortContextKeys;
  // A launch bound valid for every step of its graph.
  in.segments.max_k =
      int(short_context ? std::min(kShortContextKeys, cache_.capacity()) : cache_.capacity());
  in.segments.causal = true;
  in.segments.scale = 1.0f / std::sqrt(float(config_.text.head_dim));
  const int graph = (short_context ? kShortDecodeStepGraph : kDecodeStepGraph) +
                    (pick_greedily ? kGreedyGraphOffset : 0);
  backend_.run_captured(graph, [&] {
    // The token joins the history at its cache slot (the history's positions are the cache's).
    Tensor history_rows = history_.view({history_.dim(0), 1});
    backend_.scatter_rows(next_token_.view({1, 1}), in.slots, history_rows);
    backend_.publish_row(history_rows, in.slots, step_inputs_.rows(kStepNumber, 1));
    decoder_->run(backend_, cache_, in, &logits_);
    if (pick_greedily) {
      SamplingParams greedy;
      greedy.temperature = 0.0f;
      backend_.sample(logits_, Tensor(), greedy, 0.0f, next_token_);
    }
    Tensor advancing = step_inputs_.rows(kAdvancing, kStepInputs - kAdvancing);
    backend_.increment(advancing);
  });
  device_inputs_slot_ = slot + 1;
  step_number_ = (step_number_ + 1) % kStepNumbers;
  if (step_number_ == 0) device_inputs_slot_ = -1;  // the device's I32 would overflow: upload
  return tag;
}

}  // namespace qwenvl
