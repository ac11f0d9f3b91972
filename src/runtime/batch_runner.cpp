#include "runtime/batch_runner.h"

#include <algorithm>

#include "core/error.h"
#include "runtime/sequence_output.h"
#include "runtime/token_sampler.h"

namespace qwenvl {

namespace {

// The embedding rows of a request's images and videos.
int64_t vision_rows_of(const GenerationRequest& request, const VisionConfig& vision) {
  int64_t rows = 0;
  for (const std::vector<ImageInput>* inputs : {&request.images, &request.videos})
    for (const ImageInput& input : *inputs) rows += embedding_rows(vision, input.grid);
  return rows;
}

}  // namespace

struct BatchRunner::Sequence {
  GenerationRequest request;
  BatchCallbacks callbacks;
  GenerationResult result;
  std::unique_ptr<TokenSampler> sampler;
  std::unique_ptr<SequenceOutput> output;  // refers to request and result
  BlockTable table;
  int64_t cached = 0;  // positions whose keys are in the cache
  // Positions to fill before decoding: the prompt, and after a preemption also the tokens
  // produced but the last (which the next decode row feeds).
  int64_t target = 0;
  bool done = false;
  // While prefilling: the image embeddings (in the workspace, under a WorkspaceHold), the prompt
  // positions of the pad tokens they replace, and the next of those to place.
  Tensor image_embeds;
  std::vector<int32_t> pads;
  size_t next_pad = 0;
  // The caches': each image's and video's hash in prompt order, the image each pad belongs to,
  // the hashes of the full blocks so far, and how many blocks of the table are published.
  std::vector<ContentHash> vision_hashes;
  std::vector<int32_t> pad_owner;
  std::vector<ContentHash> block_hashes;
  size_t published = 0;

  int64_t prompt_length() const { return int64_t(request.prompt_ids.size()); }
  bool decoding() const { return cached >= target && !result.tokens.empty(); }
};

BatchRunner::BatchRunner(Qwen25VL& model, const Tokenizer& tokenizer, BatchCaches caches)
    : model_(model),
      tokenizer_(tokenizer),
      blocks_(model.kv_cache_blocks()),
      caches_(caches),
      tokens_host_(Tensor::empty({model.limits().max_sequences}, DType::I32)),
      repeat_ids_host_(Tensor::empty(model.batch_repeats().ids.shape(), DType::I32)),
      repeat_offsets_host_(Tensor::empty({model.limits().max_sequences + 1}, DType::I32)),
      repeat_penalties_host_(Tensor::empty({model.limits().max_sequences}, DType::F32)) {
  if (caches.image_bytes > 0) image_cache_.emplace(caches.image_bytes);
  if (model.limits().max_sequences > model.limits().prefill_chunk)
    qwenvl::fail("max_sequences (", model.limits().max_sequences, ") exceeds the prefill chunk (",
                 model.limits().prefill_chunk, "): one pass must hold a row of each");
}

BatchRunner::~BatchRunner() {
  if (!idle()) fail_all(std::make_exception_ptr(Error("the runner was destroyed")));
}

void BatchRunner::add(GenerationRequest request, BatchCallbacks callbacks) {
  check_context(int64_t(request.prompt_ids.size()), request.max_new_tokens, model_.max_context());
  auto s = std::make_unique<Sequence>();
  s->request = std::move(request);
  s->callbacks = std::move(callbacks);
  // The repetition penalties of a pass are one op over each sampler's distinct ids (pick_tokens).
  s->sampler = std::make_unique<TokenSampler>(s->request, model_.config().text.vocab_size,
                                              RepeatPenalty::kCallerRows);
  s->output =
      std::make_unique<SequenceOutput>(s->request, tokenizer_, s->callbacks.on_text, s->result);
  s->result.positions = prompt_positions(s->request, model_.config());
  waiting_.push_back(std::move(s));
}

int32_t BatchRunner::id_at(const Sequence& s, int64_t p) const {
  return p < s.prompt_length() ? s.request.prompt_ids[size_t(p)]
                               : s.result.tokens[size_t(p - s.prompt_length())];
}

int32_t BatchRunner::position_at(const Sequence& s, int row, int64_t p) const {
  return int32_t(p < s.prompt_length() ? s.result.positions.at(row, p)
                                       : decode_position(p, s.result.positions.rope_delta));
}

void BatchRunner::hash_blocks(Sequence& s, size_t count) const {
  while (s.block_hashes.size() < count) {
    const size_t block = s.block_hashes.size();
    // The first block's chain starts from what sets positions beside the tokens: video timing.
    ContentHasher hasher = block == 0 ? ContentHasher() : ContentHasher(s.block_hashes.back());
    if (block == 0)
      for (float seconds : s.request.video_seconds_per_grid) hasher.add(&seconds, sizeof seconds);
    const int64_t first = int64_t(block) * kKvBlockSize;
    auto pad = std::lower_bound(s.pads.begin(), s.pads.end(), int32_t(first));
    for (int64_t p = first; p < first + kKvBlockSize; ++p) {
      hasher.add(uint64_t(uint32_t(id_at(s, p))));
      if (pad != s.pads.end() && *pad == p)
        hasher.add(s.vision_hashes[size_t(s.pad_owner[size_t(pad++ - s.pads.begin())])]);
    }
    s.block_hashes.push_back(hasher.finish());
  }
}

void BatchRunner::publish_full_blocks(Sequence& s) {
  if (!caches_.prefix) return;
  const size_t full = size_t(s.cached / kKvBlockSize);
  if (full <= s.published) return;
  hash_blocks(s, full);
  for (; s.published < full; ++s.published)
    blocks_.publish(s.table[s.published], s.block_hashes[s.published]);
}

void BatchRunner::start_prefill(Sequence& s) {
  try {
    s.cached = 0;
    s.published = 0;
    s.target = s.prompt_length() + std::max<int64_t>(0, int64_t(s.result.tokens.size()) - 1);
    const ModelConfig& config = model_.config();
    s.pads.clear();
    for (int64_t p = 0; p < s.prompt_length(); ++p) {
      const int32_t id = s.request.prompt_ids[size_t(p)];
      if (id == config.image_token_id || id == config.video_token_id) s.pads.push_back(int32_t(p));
    }
    const std::vector<ImageInput> vision =
        vision_inputs_in_prompt_order(s.request, config.image_token_id, config.video_token_id);
    int64_t vision_rows = 0;
    for (const ImageInput& input : vision) vision_rows += embedding_rows(config.vision, input.grid);
    if (int64_t(s.pads.size()) != vision_rows)
      qwenvl::fail("the prompt has ", s.pads.size(),
                   " image and video pad tokens but its images and videos give ", vision_rows,
                   " embeddings");
    if ((caches_.prefix || image_cache_) && s.vision_hashes.size() != vision.size()) {
      s.vision_hashes.clear();
      s.pad_owner.clear();
      for (size_t i = 0; i < vision.size(); ++i) {
        s.vision_hashes.push_back(image_hash(vision[i]));
        s.pad_owner.insert(s.pad_owner.end(), size_t(embedding_rows(config.vision, vision[i].grid)),
                           int32_t(i));
      }
    }
    if (caches_.prefix) {
      // Whole blocks before the last position to fill: that one's row gives the logits.
      const size_t reusable = size_t((s.target - 1) / kKvBlockSize);
      hash_blocks(s, reusable);
      const int64_t reused = blocks_.reuse(s.table, {s.block_hashes.data(), reusable});
      s.cached = reused * kKvBlockSize;
      s.published = size_t(reused);
      prefix_hit_tokens_ += s.cached;
    }
    s.next_pad =
        size_t(std::lower_bound(s.pads.begin(), s.pads.end(), int32_t(s.cached)) - s.pads.begin());
    prefilling_.push_back(&s);
    if (s.next_pad < s.pads.size()) {
      holds_.push_back({&s, model_.workspace_marks(), vision_rows});
      s.image_embeds = image_cache_
                           ? encode_images_cached(model_, vision, s.vision_hashes, *image_cache_)
                           : model_.encode_images(vision);
    }
  } catch (...) {
    fail(s, std::current_exception());
  }
}

void BatchRunner::end_prefill(Sequence& s) {
  auto it = std::find(prefilling_.begin(), prefilling_.end(), &s);
  if (it == prefilling_.end()) return;
  prefilling_.erase(it);
  s.image_embeds = Tensor();
  release_hold(s);
}

void BatchRunner::release_hold(const Sequence& s) {
  for (WorkspaceHold& hold : holds_)
    if (hold.owner == &s) hold.owner = nullptr;
  while (!holds_.empty() && !holds_.back().owner) {
    model_.release_workspaces(holds_.back().marks);
    holds_.pop_back();
  }
}

int64_t BatchRunner::held_rows() const {
  int64_t rows = 0;
  for (const WorkspaceHold& hold : holds_) rows += hold.rows;
  return rows;
}

int64_t BatchRunner::pending_prefill_rows() const {
  int64_t rows = 0;
  for (const Sequence* s : prefilling_) rows += s->target - s->cached;
  return rows;
}

void BatchRunner::finish(Sequence& s) {
  if (s.done) return;
  end_prefill(s);
  blocks_.release(s.table);
  s.done = true;
  if (s.callbacks.on_done) s.callbacks.on_done(s.result);
}

void BatchRunner::fail(Sequence& s, std::exception_ptr error) {
  if (s.done) return;
  end_prefill(s);
  blocks_.release(s.table);
  s.done = true;
  if (s.callbacks.on_error) s.callbacks.on_error(error);
}

void BatchRunner::fail_all(std::exception_ptr error) {
  for (auto& s : running_) fail(*s, error);
  for (auto& s : waiting_) fail(*s, error);
  drop_finished();
}

void BatchRunner::preempt(Sequence& s) {
  end_prefill(s);
  blocks_.release(s.table);
  s.cached = 0;
  auto it = std::find_if(running_.begin(), running_.end(),
                         [&](const std::unique_ptr<Sequence>& r) { return r.get() == &s; });
  waiting_.push_front(std::move(*it));
  running_.erase(it);
}

void BatchRunner::drop_finished() {
  auto done = [](const std::unique_ptr<Sequence>& s) { return s->done; };
  running_.erase(std::remove_if(running_.begin(), running_.end(), done), running_.end());
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), done), waiting_.end());
}

void BatchRunner::admit() {
  // A sequence is admitted while a block is free for each running one's next token and one for
  // its own first rows (one admitted into a full cache would only be preempted again), and while
  // the next pass has rows to spare for its prompt. One with images or videos waits while the
  // embeddings held in the workspace leave no room for its own within the plan's
  // max_image_tokens (unless none are held: the request's own limits were checked).
  while (!waiting_.empty() && int64_t(running_.size()) < model_.limits().max_sequences &&
         blocks_.free() > int64_t(running_.size()) &&
         int64_t(running_.size()) + pending_prefill_rows() < model_.limits().prefill_chunk) {
    const GenerationRequest& next = waiting_.front()->request;
    const int64_t vision_rows = vision_rows_of(next, model_.config().vision);
    if (vision_rows > 0 && !holds_.empty() &&
        held_rows() + vision_rows > model_.limits().max_image_tokens)
      break;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
    start_prefill(*running_.back());
    drop_finished();
  }
}

void BatchRunner::pick_tokens(const std::vector<Sequence*>& sampled) {
  Backend& backend = model_.backend();
  const int64_t rows = int64_t(sampled.size());
  const int64_t vocab = model_.config().text.vocab_size;
  Tensor logits = model_.batch_logits().rows(0, rows);
  Tensor tokens = model_.batch_tokens().rows(0, rows);
  // The repetition penalties of the rows as one op; a row whose sampler applies none has no ids.
  // The ids buffer holds as many as the cache holds tokens (and a row's at most max_context);
  // sequences sharing prefix blocks can together have more, which take further ops.
  Qwen25VL::BatchRepeats& repeats = model_.batch_repeats();
  int32_t* offsets = repeat_offsets_host_.data<int32_t>();
  int64_t first = 0;  // the first row of the op being gathered
  auto flush = [&](int64_t end) {
    const int64_t count = end - first, n = offsets[count];
    if (n > 0) {
      Tensor ids = repeats.ids.rows(0, n);
      Tensor row_offsets = repeats.offsets.rows(0, count + 1);
      Tensor penalties = repeats.penalties.rows(0, count);
      backend.copy_from_host(repeat_ids_host_.rows(0, n), ids);
      backend.copy_from_host(repeat_offsets_host_.rows(0, count + 1), row_offsets);
      backend.copy_from_host(repeat_penalties_host_.rows(0, count), penalties);
      Tensor rows_logits = logits.rows(first, count);
      backend.penalize_repeats(rows_logits, ids, row_offsets, penalties);
    }
    first = end;
    offsets[0] = 0;
  };
  offsets[0] = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const TokenSampler& sampler = *sampled[size_t(i)]->sampler;
    const std::span<const int32_t> ids = sampler.repeated_ids();
    if (offsets[i - first] + int64_t(ids.size()) > repeat_ids_host_.numel()) flush(i);
    if (int64_t(ids.size()) > repeat_ids_host_.numel())
      fail_internal("a sequence has ", ids.size(), " distinct ids; the context holds ",
                    repeat_ids_host_.numel());
    const int64_t at = offsets[i - first];
    std::copy(ids.begin(), ids.end(), repeat_ids_host_.data<int32_t>() + at);
    offsets[i - first + 1] = int32_t(at + int64_t(ids.size()));
    repeat_penalties_host_.data<float>()[i - first] = sampler.caller_penalty();
  }
  flush(rows);
  // Every row's greedy pick; the rows that sample otherwise overwrite theirs.
  backend.argmax_rows(logits, tokens);
  for (int64_t i = 0; i < rows; ++i) {
    Sequence& s = *sampled[size_t(i)];
    if (s.sampler->greedy_after_caller_penalty()) continue;
    Tensor row = logits.rows(i, 1).view({vocab});
    Tensor token = tokens.rows(i, 1);
    s.sampler->sample(backend, row, Tensor(), int64_t(s.result.tokens.size()), token);
  }
  Tensor picked = tokens_host_.rows(0, rows);
  backend.copy_to_host(tokens, picked);
  backend.synchronize();
}

BatchPass BatchRunner::step() {
  BatchPass pass;
  auto end_if_cancelled = [&](Sequence& s) {
    if (!s.callbacks.cancelled || !s.callbacks.cancelled()) return;
    s.result.finish_reason = "cancelled";
    finish(s);
  };
  for (auto& s : running_) end_if_cancelled(*s);
  for (auto& s : waiting_) end_if_cancelled(*s);
  drop_finished();
  admit();
  if (running_.empty()) return pass;

  // A block for each decoding sequence's next position, in admission order; where none is free
  // the most recently admitted sequence gives its blocks back. Victims come from the back, so a
  // sequence that gives up its own blocks is the last one left and the loop ends with it.
  for (size_t i = 0; i < running_.size(); ++i) {
    Sequence& s = *running_[i];
    if (!s.decoding()) continue;
    while (!blocks_.grow(s.table, s.cached + 1)) {
      const bool itself = running_.back().get() == &s;
      preempt(*running_.back());
      ++pass.preempted;
      if (itself) break;
    }
  }

  const int64_t limit = model_.limits().prefill_chunk;
  DecoderBatch batch;
  batch.block_size = kKvBlockSize;
  batch.cu_q = {0};
  batch.cu_k = {0};
  std::vector<Sequence*> in_batch, sampled;
  std::vector<int64_t> in_rows;  // rows of each sequence in the pass
  auto add_rows = [&](Sequence& s, int64_t rows) {
    for (int64_t p = s.cached; p < s.cached + rows; ++p) {
      batch.ids.push_back(id_at(s, p));
      batch.slots.push_back(kv_row(s.table, p));
    }
    in_batch.push_back(&s);
    in_rows.push_back(rows);
    batch.cu_q.push_back(batch.cu_q.back() + int32_t(rows));
    batch.cu_k.push_back(batch.cu_k.back() + int32_t(s.cached + rows));
    batch.max_k = std::max(batch.max_k, int(s.cached + rows));
  };
  for (auto& s : running_)
    if (s->decoding()) {
      batch.logit_rows.push_back(int32_t(batch.ids.size()));
      sampled.push_back(s.get());
      add_rows(*s, 1);
      ++pass.decode_rows;
    }
  // The prefilling sequences' prompt rows, in admission order, as many as the pass and the free
  // blocks hold; each whose chunk has image pad tokens adds its embedding rows for them.
  const std::vector<Sequence*> prefilling = prefilling_;
  for (Sequence* prefilling_sequence : prefilling) {
    Sequence& s = *prefilling_sequence;
    const int64_t covered = int64_t(s.table.size()) * kKvBlockSize + blocks_.free() * kKvBlockSize;
    const int64_t rows =
        std::min({s.target - s.cached, limit - int64_t(batch.ids.size()), covered - s.cached});
    if (rows > 0 && blocks_.grow(s.table, s.cached + rows)) {
      const int32_t first = int32_t(batch.ids.size());
      if (s.next_pad < s.pads.size() && s.pads[s.next_pad] < s.cached + rows) {
        ChunkImageRows images;
        images.embeddings = &s.image_embeds;
        images.first_row = int64_t(s.next_pad);
        while (s.next_pad < s.pads.size() && s.pads[s.next_pad] < s.cached + rows)
          images.chunk_positions.push_back(first + s.pads[s.next_pad++] - int32_t(s.cached));
        batch.images.push_back(std::move(images));
      }
      if (s.cached + rows == s.target && s.result.tokens.empty()) {
        batch.logit_rows.push_back(first + int32_t(rows) - 1);
        sampled.push_back(&s);
      }
      add_rows(s, rows);
      pass.prefill_rows += int(rows);
    }
  }
  if (batch.ids.empty()) return pass;
  // Positions: row-major [3, n].
  const int64_t n = int64_t(batch.ids.size());
  batch.positions.resize(size_t(3 * n));
  for (size_t i = 0, row = 0; i < in_batch.size(); ++i)
    for (int64_t p = in_batch[i]->cached; p < in_batch[i]->cached + in_rows[i]; ++p, ++row)
      for (int r = 0; r < 3; ++r)
        batch.positions[size_t(r * n) + row] = position_at(*in_batch[i], r, p);
  size_t stride = 1;
  for (Sequence* s : in_batch) stride = std::max(stride, s->table.size());
  batch.table_stride = int(stride);
  batch.block_table.assign(in_batch.size() * stride, 0);
  for (size_t i = 0; i < in_batch.size(); ++i)
    std::copy(in_batch[i]->table.begin(), in_batch[i]->table.end(),
              batch.block_table.begin() + int64_t(i * stride));

  try {
    model_.forward_batch(batch);
    if (!sampled.empty()) pick_tokens(sampled);
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    fail_all(error);
    std::rethrow_exception(error);
  }

  for (size_t i = 0; i < in_batch.size(); ++i) {
    Sequence& s = *in_batch[i];
    s.cached += in_rows[i];
    publish_full_blocks(s);
    if (s.cached == s.target) end_prefill(s);
  }
  for (size_t i = 0; i < sampled.size(); ++i) {
    Sequence& s = *sampled[i];
    const int32_t id = tokens_host_.data<int32_t>()[i];
    try {
      if (s.output->accept(id, *s.sampler)) {
        s.sampler->add_generated(id);
        continue;
      }
      s.output->finish();
      finish(s);
    } catch (...) {
      fail(s, std::current_exception());
    }
  }
  drop_finished();
  return pass;
}

}  // namespace qwenvl
