#include "model/qwen2_5_vl.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/batch_step.h"

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
constexpr int kGraphsPerStage = 4;  // graph keys of decoder stage s: 1 + 4s to 4 + 4s
constexpr int64_t kShortContextKeys = 1024;
// Step numbers wrap before they leave the I32 they travel in.
constexpr int64_t kStepNumbers = int64_t(1) << 31;
// Graph keys of padded decode passes: kPaddedPassGraphs + rows · 32 + log2(table width).
constexpr int kPaddedPassGraphs = 1 << 20;

// The layout of the widest padded decode pass `limits` allow: max_sequences rows, tables as wide
// as a sequence of max_context tokens needs.
BatchStepLayout widest_batch_step(const ModelLimits& limits) {
  const int64_t blocks = (limits.max_context + kKvBlockSize - 1) / kKvBlockSize;
  return {limits.max_sequences, padded_table_stride(int(blocks))};
}

// A stage's share of a decode step's state when the decoder runs in several stages
// (Qwen25VL::StageState): its step inputs, token and the hand-over rows.
size_t stage_state_bytes(const TextConfig& t, DType dtype) {
  return (kStepInputs + 1) * sizeof(int32_t) + 2 * size_t(t.hidden_size) * dtype_size(dtype) +
         4 * kAllocationAlignment;
}

// The KV cache's layers on each backend of a placement (layer_backends[l]: layer l's).
std::vector<Backend*> layer_backends(const TextConfig& t, const WeightPlacement& placement,
                                     const std::vector<Backend*>& backends) {
  std::vector<Backend*> out;
  for (int l = 0; l < t.num_hidden_layers; ++l)
    out.push_back(backends[size_t(placement.backend_of_layer(l))]);
  return out;
}

}  // namespace

size_t sampling_state_bytes(const TextConfig& t, const ModelLimits& limits) {
  const size_t sequences = size_t(limits.max_sequences);
  const size_t padded_pass =
      sequences > 1
          ? size_t(widest_batch_step(limits).elements()) * sizeof(int32_t) + kAllocationAlignment
          : 0;
  const size_t batches = sequences * (size_t(t.vocab_size) * sizeof(float) + sizeof(int32_t)) +
                         (size_t(kv_cache_capacity(limits)) + sequences) * sizeof(int32_t) +
                         (sequences + 1) * sizeof(int32_t) + sequences * sizeof(float) +
                         3 * kAllocationAlignment + padded_pass;
  return size_t(t.vocab_size) * sizeof(float) + sizeof(int32_t) +
         size_t(limits.max_context) * sizeof(int32_t) + kStepInputs * sizeof(int32_t) + batches +
         6 * kAllocationAlignment;
}

int64_t pass_rows(const ModelLimits& limits) {
  return limits.max_sequences > 1 ? limits.prefill_chunk
                                  : std::min(limits.prefill_chunk, limits.max_context);
}

int64_t kv_cache_capacity(const ModelLimits& limits) {
  const int64_t tokens = std::max(limits.max_context, limits.kv_cache_tokens);
  const int64_t padding_block = limits.max_sequences > 1 ? kKvBlockSize : 0;
  return (tokens + kKvBlockSize - 1) / kKvBlockSize * kKvBlockSize + padding_block;
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

namespace {

// The workspace of a backend that runs the vision tower (vision), holds the image embeddings
// (images: the vision tower's backend and the token embedding's) and runs decoder stages
// (decoder).
size_t backend_workspace_bytes(const ModelConfig& config, DType compute, const ModelLimits& limits,
                               bool vision, bool images, bool decoder) {
  // Image embeddings stay in the workspace while the vision tower encodes the next image and
  // while the decoder runs its chunks on top of them.
  const size_t embeds =
      images ? image_embedding_bytes(config.text, limits.max_image_tokens, compute) : 0;
  const int64_t chunk = pass_rows(limits);
  const size_t tower = vision && limits.max_image_patches > 0
                           ? VisionTower::workspace_bytes(config.vision, limits.max_image_patches,
                                                          compute, limits.vision_chunk_rows)
                           : 0;
  return embeds + std::max(tower, decoder ? Decoder::workspace_bytes(config.text, chunk, compute)
                                          : size_t(0));
}

}  // namespace

size_t Qwen25VL::workspace_bytes(const ModelConfig& config, DType compute,
                                 const ModelLimits& limits) {
  return backend_workspace_bytes(config, compute, limits, true, true, true);
}

MemoryPlan Qwen25VL::plan(const ModelConfig& config, const Checkpoint& checkpoint, DType compute,
                          const ModelLimits& limits, const WeightPlacement& placement) {
  QWENVL_CHECK(placement.backends() == 1, "a plan for ", placement.backends(), " backends");
  return plans(config, checkpoint, {compute}, limits, placement).front();
}

std::vector<MemoryPlan> Qwen25VL::plans(const ModelConfig& config, const Checkpoint& checkpoint,
                                        const std::vector<DType>& computes,
                                        const ModelLimits& limits,
                                        const WeightPlacement& placement) {
  const size_t n = computes.size();
  QWENVL_CHECK(int(n) >= placement.backends(), n, " dtypes for ", placement.backends(),
               " backends");
  // Counts the weights as the constructor loads them: resident bytes, streamed groups.
  std::vector<WeightLoader> counters;
  for (DType compute : computes)
    counters.emplace_back(checkpoint, nullptr, compute, config.quantization);
  std::vector<WeightLoader*> loaders;
  for (WeightLoader& counter : counters) loaders.push_back(&counter);
  load_vision_weights(config.vision, *loaders[size_t(placement.vision_backend)],
                      placement.stream_vision_blocks);
  load_decoder_weights(config.text, loaders, placement);
  const std::vector<DecoderStage> stages = decoder_stages(config.text, placement, {});

  std::vector<MemoryPlan> out(n);
  for (size_t b = 0; b < n; ++b) {
    MemoryPlan& p = out[b];
    const DType compute = computes[b];
    p.weight_bytes = counters[b].bytes();
    if (counters[b].streamed_bytes() > 0) {
      p.streamed_host_bytes = counters[b].streamed_bytes();
      p.stream_slot_bytes = counters[b].largest_group_bytes();
      p.stream_slots = placement.slots;
    }
    for (int l = 0; l < config.text.num_hidden_layers; ++l)
      if (placement.backend_of_layer(l) == int(b))
        p.persistent_bytes += kv_cache_layer_bytes(config.text, kv_cache_capacity(limits), compute);
    if (placement.head_backend == int(b))
      p.persistent_bytes += sampling_state_bytes(config.text, limits);
    bool runs_decoder = false;
    for (const DecoderStage& stage : stages) {
      if (stage.backend_index != int(b)) continue;
      runs_decoder = true;
      if (stages.size() > 1) p.persistent_bytes += stage_state_bytes(config.text, compute);
    }
    const bool vision = placement.vision_backend == int(b);
    p.workspace_bytes =
        vision || runs_decoder
            ? backend_workspace_bytes(config, compute, limits, vision,
                                      vision || placement.embed_backend == int(b), runs_decoder)
            : 0;
  }
  return out;
}

Qwen25VL::Qwen25VL(const ModelConfig& config, const Checkpoint& checkpoint, Backend& backend,
                   const ModelLimits& limits, const WeightPlacement& placement,
                   const LoadProgress& progress)
    : Qwen25VL(config, checkpoint, std::vector<Backend*>{&backend}, limits, placement, progress) {}

Qwen25VL::Qwen25VL(const ModelConfig& config, const Checkpoint& checkpoint,
                   const std::vector<Backend*>& backends, const ModelLimits& limits,
                   const WeightPlacement& placement, const LoadProgress& progress)
    : config_(config), backends_(backends), placement_(placement), limits_(limits) {
  if (limits.max_context < 1 || limits.prefill_chunk < 1 || limits.vision_chunk_rows < 1 ||
      limits.max_sequences < 1)
    fail("the context limit, prefill chunk, vision chunk and sequence count must be positive");
  if (placement.slots < 2) fail("streamed weights need at least two device buffers");
  QWENVL_CHECK(int(backends.size()) >= placement.backends(), backends.size(), " backends for ",
               placement.backends());
  for (Backend* backend : backends) QWENVL_CHECK(backend, "a null backend");
  std::vector<DType> computes;
  for (Backend* backend : backends) computes.push_back(backend->compute_dtype());
  const std::vector<MemoryPlan> memory = plans(config, checkpoint, computes, limits, placement);
  for (size_t b = 0; b < backends.size(); ++b) {
    const MemoryPlan& p = memory[b];
    backends[b]->reserve(p.weight_bytes, p.persistent_bytes, p.workspace_bytes);
    if (p.stream_slots > 0)
      backends[b]->reserve_streaming(p.stream_slot_bytes, p.stream_slots, p.streamed_host_bytes);
  }
  std::vector<WeightLoader> loaders;
  for (Backend* backend : backends)
    loaders.emplace_back(checkpoint, backend, backend->compute_dtype(), config.quantization);
  // Each loader reports what it read; the progress is their sum.
  std::vector<size_t> read(backends.size(), 0);
  const size_t total = checkpoint.total_bytes();
  std::vector<WeightLoader*> loader_list;
  for (size_t b = 0; b < loaders.size(); ++b) {
    if (progress)
      loaders[b].set_progress([&progress, &read, total, b](size_t bytes) {
        read[b] = bytes;
        size_t sum = 0;
        for (size_t r : read) sum += r;
        progress(sum, total);
      });
    loader_list.push_back(&loaders[b]);
  }
  vision_.emplace(config.vision,
                  load_vision_weights(config.vision, loaders[size_t(placement.vision_backend)],
                                      placement.stream_vision_blocks),
                  limits.vision_chunk_rows);
  decoder_.emplace(config.text, load_decoder_weights(config.text, loader_list, placement),
                   decoder_stages(config.text, placement, backends));
  cache_ = KvCache(layer_backends(config.text, placement, backends),
                   cache_shape(config.text, kv_cache_capacity(limits)));
  Backend& head = backend();
  logits_ = head.alloc_persistent({int64_t(config.text.vocab_size)}, DType::F32);
  next_token_ = head.alloc_persistent({1}, DType::I32);
  history_ = head.alloc_persistent({limits.max_context}, DType::I32);
  batch_logits_ =
      head.alloc_persistent({limits.max_sequences, int64_t(config.text.vocab_size)}, DType::F32);
  batch_tokens_ = head.alloc_persistent({limits.max_sequences}, DType::I32);
  batch_repeats_.ids =
      head.alloc_persistent({kv_cache_capacity(limits) + limits.max_sequences}, DType::I32);
  batch_repeats_.offsets = head.alloc_persistent({limits.max_sequences + 1}, DType::I32);
  batch_repeats_.penalties = head.alloc_persistent({limits.max_sequences}, DType::F32);
  if (limits.max_sequences > 1) {
    const int64_t elements = widest_batch_step(limits).elements();
    batch_step_inputs_ = head.alloc_persistent({elements}, DType::I32);
    batch_step_host_ = Tensor::empty({elements}, DType::I32);
    pad_decode_batches_ = head.replays_captures();
  }
  idle_workspace_mark_ = head.workspace_mark();
  const std::vector<DecoderStage>& stages = decoder_->stages();
  const Shape row{1, int64_t(config.text.hidden_size)};
  for (const DecoderStage& stage : stages) {
    Backend& b = *stage.backend;
    StageState state;
    state.step_inputs = b.alloc_persistent({kStepInputs}, DType::I32);
    if (stages.size() > 1) {
      state.token = b.alloc_persistent({1}, DType::I32);
      state.x = b.alloc_persistent(row, b.compute_dtype());
      state.normed = b.alloc_persistent(row, b.compute_dtype());
    }
    stage_state_.push_back(state);
  }
  if (stages.size() > 1) {
    host_x_ = Tensor::empty(row, DType::F32);
    host_normed_ = Tensor::empty(row, DType::F32);
  }
}

std::vector<size_t> Qwen25VL::workspace_marks() const {
  std::vector<size_t> marks;
  for (const Backend* backend : backends_) marks.push_back(backend->workspace_mark());
  return marks;
}

void Qwen25VL::release_workspaces(const std::vector<size_t>& marks) {
  QWENVL_CHECK(marks.size() == backends_.size(), marks.size(), " marks for ", backends_.size(),
               " backends");
  for (size_t b = 0; b < backends_.size(); ++b) backends_[b]->workspace_release(marks[b]);
}

void Qwen25VL::synchronize() {
  for (Backend* backend : backends_) backend->synchronize();
}

void Qwen25VL::profile_section(const std::string& name) {
  for (Backend* backend : backends_) backend->profile_section(name);
}

void Qwen25VL::warm_up() {
  vision_->prepare(vision_backend(), limits_.max_image_patches);
  decoder_->prepare(pass_rows(limits_), limits_.max_sequences > 1);
  const std::vector<size_t> marks = workspace_marks();
  const int64_t unit = config_.vision.spatial_merge_size;
  const int64_t side = 2 * unit;  // the smallest grid: one merged 2x2 block of merge units
  if (limits_.max_image_patches >= side * side) {
    const int64_t patch_dim = int64_t(config_.vision.in_channels) *
                              config_.vision.temporal_patch_size * config_.vision.patch_size *
                              config_.vision.patch_size;
    Tensor pixels = Tensor::empty({side * side, patch_dim}, DType::F32);
    std::fill(pixels.data<float>(), pixels.data<float>() + pixels.numel(), 0.0f);
    encode_images({ImageInput{pixels, VisionGrid{1, side, side}}});
    release_workspaces(marks);
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
    release_workspaces(marks);
    decode_step(int32_t(warm_tokens));
    if (warm_tokens + 2 <= limits_.max_context) decode_next(true);  // and its greedy twin
  }
  synchronize();
  cache_.clear();
  device_inputs_slot_ = -1;
}

Tensor Qwen25VL::encode_images(const std::vector<ImageInput>& images) {
  int64_t tokens = 0;
  for (const ImageInput& image : images) tokens += embedding_rows(config_.vision, image.grid);
  const Shape shape{tokens, int64_t(config_.text.hidden_size)};
  Backend& tower = vision_backend();
  const size_t mark = tower.workspace_mark();
  Tensor out = tower.alloc(shape, tower.compute_dtype());
  int64_t row = 0;
  for (const ImageInput& image : images) {
    const int64_t count = embedding_rows(config_.vision, image.grid);
    Tensor rows = out.rows(row, count);
    vision_->encode(tower, image.pixel_values, image.grid, rows, limits_.max_image_patches);
    row += count;
  }
  Backend& embedding = image_backend();
  if (&embedding == &tower) return out;
  // The token embedding's backend scatters them into the prompt: they move there via the host.
  Tensor host = Tensor::empty(shape, DType::F32);
  tower.copy_to_host(out, host);
  tower.synchronize();
  tower.workspace_release(mark);
  Tensor moved = embedding.alloc(shape, embedding.compute_dtype());
  embedding.copy_from_host(host, moved);
  return moved;
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
    decoder_->forward(cache_, chunk_ids, chunk_positions, &images,
                      begin + count == n ? &logits_ : nullptr);
  }
}

void Qwen25VL::forward_batch(const DecoderBatch& batch) {
  if (int64_t(batch.logit_rows.size()) > limits_.max_sequences)
    fail_internal("a batch asks for ", batch.logit_rows.size(), " rows of logits; the model holds ",
                  limits_.max_sequences);
  if (int64_t(batch.ids.size()) > pass_rows(limits_))
    fail_internal("a batch of ", batch.ids.size(), " rows is larger than the prefill chunk of ",
                  limits_.prefill_chunk);
  QWENVL_CHECK(batch.block_table.empty() || batch.block_size == kKvBlockSize, "blocks of ",
               batch.block_size, " rows");
  // Graph-captured single-sequence steps keep their inputs on the device: they are stale now.
  device_inputs_slot_ = -1;
  if (forward_padded_decode(batch)) return;
  decoder_->forward(cache_, batch, batch.logit_rows.empty() ? nullptr : &batch_logits_);
}

bool Qwen25VL::forward_padded_decode(const DecoderBatch& batch) {
  if (!pad_decode_batches_ || decoder_->stages().size() != 1 || !is_decode_batch(batch))
    return false;
  const BatchStepLayout widest = widest_batch_step(limits_);
  const BatchStepLayout layout{padded_batch_rows(int(batch.ids.size()), limits_.max_sequences),
                               padded_table_stride(batch.table_stride)};
  if (layout.stride > widest.stride) return false;
  Backend& b = backend();
  int log2_stride = 0;
  while ((1 << log2_stride) < layout.stride) ++log2_stride;
  const int key = kPaddedPassGraphs + layout.rows * 32 + log2_stride;
  // A graph replays the workspace addresses it was recorded with: graphs are recorded and
  // replayed over an idle workspace only; over one that holds more (a prefilling sequence's image
  // embeddings) the pass runs as it is.
  if (b.workspace_mark() != idle_workspace_mark_) return false;
  decoder_->check(cache_, batch);
  const int32_t padding_block = int32_t(cache_.capacity() / kKvBlockSize - 1);
  pad_decode_batch(batch, layout, padding_block, batch_step_host_.data<int32_t>());
  Tensor inputs = batch_step_inputs_.rows(0, layout.elements());
  b.copy_from_host(batch_step_host_.rows(0, layout.elements()), inputs);

  const int rows = layout.rows;
  DecoderInputs in;
  in.ids = inputs.rows(layout.ids(), rows);
  in.positions = inputs.rows(layout.positions(), 3 * int64_t(rows)).view({3, rows});
  in.slots = inputs.rows(layout.slots(), rows);
  in.logit_rows = inputs.rows(layout.logit_rows(), rows);
  // One graph per bucket: a bucket of 1 row holds one sequence, the others several.
  in.qkv = qkv_products_for(int(batch.ids.size()), b);
  in.segments.cu_q = inputs.rows(layout.cu_q(), rows + 1);
  in.segments.cu_k = inputs.rows(layout.cu_k(), rows + 1);
  in.segments.segments = rows;
  in.segments.max_q = 1;
  // A launch bound for every pass of the graph: the keys its tables can name.
  in.segments.max_k = layout.stride * kKvBlockSize;
  in.segments.causal = true;
  in.segments.scale = 1.0f / std::sqrt(float(config_.text.head_dim));
  in.segments.block_table =
      inputs.rows(layout.block_table(), int64_t(rows) * layout.stride).view({rows, layout.stride});
  in.segments.block_size = kKvBlockSize;
  b.run_captured(key, [&] { decoder_->run(b, cache_, in, &batch_logits_); });
  return true;
}

void Qwen25VL::decode_step(int32_t token) {
  if (token < 0 || token >= config_.text.vocab_size)
    fail("token id ", token, " is outside the vocabulary of ", config_.text.vocab_size);
  Tensor host = Tensor::empty({1}, DType::I32);
  host.data<int32_t>()[0] = token;
  backend().copy_from_host(host, next_token_);
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
  const std::vector<DecoderStage>& stages = decoder_->stages();
  for (size_t s = 0; s < stages.size(); ++s)
    stages[s].backend->copy_from_host(host, stage_state_[s].step_inputs);
}

int64_t Qwen25VL::decode_next(bool pick_greedily) {
  const int64_t slot = cache_.length();
  cache_.set_length(slot + 1);  // Error before any work when the context is full
  // The last step left the device's inputs ready for this one, except after a prefill.
  if (device_inputs_slot_ != slot) upload_step_inputs(slot);
  const int64_t tag = step_number_;
  const std::vector<DecoderStage>& stages = decoder_->stages();
  Backend& head = backend();
  // The first stage embeds the token the last one sampled: across backends, via the host.
  if (stages.front().backend != &head) {
    Tensor token = Tensor::empty({1}, DType::I32);
    head.copy_to_host(next_token_, token);
    head.synchronize();
    stages.front().backend->copy_from_host(token, stage_state_.front().token);
  }

  const bool short_context = slot + 1 <= kShortContextKeys;
  // A launch bound valid for every step of its graph.
  const int max_k =
      int(short_context ? std::min(kShortContextKeys, cache_.capacity()) : cache_.capacity());
  const int graph = (short_context ? kShortDecodeStepGraph : kDecodeStepGraph) +
                    (pick_greedily ? kGreedyGraphOffset : 0);
  for (size_t s = 0; s < stages.size(); ++s) {
    const DecoderStage& stage = stages[s];
    Backend& b = *stage.backend;
    StageState& state = stage_state_[s];
    DecoderInputs in;
    in.ids = stage.embeds && &b != &head ? state.token : next_token_;
    in.positions = state.step_inputs.rows(kPositions, 3).view({3, 1});
    in.slots = state.step_inputs.rows(kSlot, 1);
    in.segments.cu_q = state.step_inputs.rows(kCuQ, 2);
    in.segments.cu_k = state.step_inputs.rows(kCuK, 2);
    in.segments.segments = 1;
    in.segments.max_q = 1;
    in.segments.max_k = max_k;
    in.segments.causal = true;
    in.segments.scale = 1.0f / std::sqrt(float(config_.text.head_dim));
    // Keys apart per stage: a backend may run several stages.
    b.run_captured(graph + kGraphsPerStage * int(s), [&] {
      if (stage.head) {
        // The token joins the history at its cache slot (the history's positions are the
        // cache's).
        Tensor history_rows = history_.view({history_.dim(0), 1});
        b.scatter_rows(next_token_.view({1, 1}), in.slots, history_rows);
        b.publish_row(history_rows, in.slots, state.step_inputs.rows(kStepNumber, 1));
      }
      if (stages.size() == 1)
        decoder_->run(b, cache_, in, &logits_);
      else
        decoder_->run_stage(stage, cache_, in, state.x, state.normed, &logits_);
      if (stage.head && pick_greedily) {
        SamplingParams greedy;
        greedy.temperature = 0.0f;
        b.sample(logits_, Tensor(), greedy, 0.0f, next_token_);
      }
      Tensor advancing = state.step_inputs.rows(kAdvancing, kStepInputs - kAdvancing);
      b.increment(advancing);
    });
    if (s + 1 < stages.size()) {
      b.copy_to_host(state.x, host_x_);
      b.copy_to_host(state.normed, host_normed_);
      b.synchronize();
      Backend& next = *stages[s + 1].backend;
      next.copy_from_host(host_x_, stage_state_[s + 1].x);
      next.copy_from_host(host_normed_, stage_state_[s + 1].normed);
    }
  }
  device_inputs_slot_ = slot + 1;
  step_number_ = (step_number_ + 1) % kStepNumbers;
  if (step_number_ == 0) device_inputs_slot_ = -1;  // the device's I32 would overflow: upload
  return tag;
}

}  // namespace qwenvl
