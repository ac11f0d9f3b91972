#include "model/decoder.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/device_indices.h"
#include "model/rope.h"

namespace qwenvl {

DecoderWeights load_decoder_weights(const TextConfig& c, const std::vector<WeightLoader*>& loaders,
                                    const WeightPlacement& placement) {
  QWENVL_CHECK(int(loaders.size()) >= placement.backends(), loaders.size(), " loaders for ",
               placement.backends(), " backends");
  auto loader = [&](int backend) -> WeightLoader& { return *loaders[size_t(backend)]; };
  auto input_norm = [](int layer) {
    return cat("model.layers.", layer, ".input_layernorm.weight");
  };
  DecoderWeights w;
  w.embed_tokens = loader(placement.embed_backend).get("model.embed_tokens.weight");
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = cat("model.layers.", l, ".");
    WeightLoader& here = loader(placement.backend_of_layer(l));
    DecoderLayerWeights lw;
    // The input norm stays resident: the layer before ends with it (see run_stage).
    lw.input_norm = here.get(input_norm(l));
    const bool streamed = placement.streams_layer(l);
    if (streamed) here.begin_group(kDecoderLayerSequence);
    lw.post_attention_norm = here.get(p + "post_attention_layernorm.weight");
    const std::string a = p + "self_attn.";
    lw.qkv_w = here.stacked({a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"});
    lw.qkv_b = here.stacked({a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"});
    lw.o_w = here.get(a + "o_proj.weight");
    lw.gate_up_w = here.stacked({p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"});
    lw.down_w = here.get(p + "mlp.down_proj.weight");
    if (streamed) lw.streamed_group = here.end_group();
    w.layers.push_back(std::move(lw));
  }
  // The norms a backend applies to a stream it hands on (or, for the embedding, starts): each
  // uploaded where it runs, shared when the next layer runs on the same backend.
  const int layers = c.num_hidden_layers;
  w.embed_norm = placement.embed_backend == placement.backend_of_layer(0)
                     ? w.layers.front().input_norm
                     : loader(placement.embed_backend).get(input_norm(0));
  for (int l = 0; l < layers; ++l) {
    const int backend = placement.backend_of_layer(l);
    DecoderLayerWeights& lw = w.layers[size_t(l)];
    if (l + 1 == layers)
      lw.next_norm = loader(backend).get("model.norm.weight");
    else if (placement.backend_of_layer(l + 1) == backend)
      lw.next_norm = w.layers[size_t(l + 1)].input_norm;
    else
      lw.next_norm = loader(backend).get(input_norm(l + 1));
  }
  if (!c.tie_word_embeddings)
    w.lm_head = loader(placement.head_backend).get("lm_head.weight");
  else if (placement.head_backend == placement.embed_backend)
    w.lm_head = w.embed_tokens;
  else
    w.lm_head = loader(placement.head_backend).get("model.embed_tokens.weight");
  return w;
}

DecoderWeights load_decoder_weights(const TextConfig& c, WeightLoader& loader,
                                    const WeightPlacement& placement) {
  QWENVL_CHECK(placement.backends() == 1, "a placement over ", placement.backends(),
               " backends with one loader");
  return load_decoder_weights(c, std::vector<WeightLoader*>{&loader}, placement);
}

std::vector<DecoderStage> decoder_stages(const TextConfig& c, const WeightPlacement& placement,
                                         const std::vector<Backend*>& backends) {
  QWENVL_CHECK(backends.empty() || int(backends.size()) >= placement.backends(), backends.size(),
               " backends for ", placement.backends());
  std::vector<DecoderStage> stages;
  // Opens a stage on `backend` unless the last one runs there.
  auto stage_on = [&](int backend) -> DecoderStage& {
    if (stages.empty() || stages.back().backend_index != backend) {
      DecoderStage next;
      next.backend_index = backend;
      next.backend = backends.empty() ? nullptr : backends[size_t(backend)];
      next.first_layer = next.end_layer = stages.empty() ? 0 : stages.back().end_layer;
      stages.push_back(next);
    }
    return stages.back();
  };
  stage_on(placement.embed_backend).embeds = true;
  for (int l = 0; l < c.num_hidden_layers; ++l)
    stage_on(placement.backend_of_layer(l)).end_layer = l + 1;
  stage_on(placement.head_backend).head = true;
  // A backend's streamed layers are one pass (Backend::begin_streamed_pass): they must not be
  // split by another backend's stage.
  for (size_t s = 0; s < stages.size(); ++s)
    for (size_t t = s + 1; t < stages.size(); ++t)
      if (stages[s].backend_index == stages[t].backend_index)
        for (const DecoderStage* stage : {&stages[s], &stages[t]})
          for (int l = stage->first_layer; l < stage->end_layer; ++l)
            if (placement.streams_layer(l))
              fail("decoder layer ", l, " streams through a backend that also runs layers on ",
                   "the far side of another backend's: stream only layers that are consecutive ",
                   "on their backend");
  return stages;
}

Decoder::Decoder(const TextConfig& config, DecoderWeights weights, std::vector<DecoderStage> stages)
    : config_(config), weights_(std::move(weights)), stages_(std::move(stages)) {
  QWENVL_CHECK(!stages_.empty() && stages_.front().embeds && stages_.back().head &&
                   stages_.back().end_layer == config.num_hidden_layers,
               "decoder stages");
  if (config.hidden_act != "silu")
    fail("hidden_act '", config.hidden_act, "' is not supported (Qwen2.5-VL uses silu)");
  if (config.num_attention_heads % config.num_key_value_heads != 0)
    fail("num_attention_heads ", config.num_attention_heads,
         " is not a multiple of num_key_value_heads ", config.num_key_value_heads);
  rope_ = mrope_spec(config.head_dim, config.rope_theta, config.mrope_section);
}

size_t Decoder::workspace_bytes(const TextConfig& c, int64_t tokens, DType dtype) {
  const int64_t d = c.hidden_size, f = c.intermediate_size;
  const int64_t q = int64_t(c.num_attention_heads) * c.head_dim;
  const int64_t kv = int64_t(c.num_key_value_heads) * c.head_dim;
  // x, normed, qkv, q, attention out, delta, gate/up and their SwiGLU; then one row of logits in
  // f32.
  const int64_t elements = tokens * (3 * d + 3 * q + 2 * kv + 3 * f);
  return size_t(elements) * dtype_size(dtype) + size_t(c.vocab_size) * sizeof(float) +
         size_t(tokens) * 8 * sizeof(int32_t) + (size_t(1) << 20);
}

QkvProducts qkv_products_for(int sequences, const Backend& backend) {
  return sequences > 1 && !backend.batch_invariant() ? QkvProducts::kOne
                                                     : QkvProducts::kPerProjection;
}

void Decoder::prepare(int64_t max_tokens, bool batches) const {
  for (const DecoderStage& stage : stages_) {
    if (stage.first_layer == stage.end_layer) continue;
    Backend& backend = *stage.backend;
    const DType dt = backend.compute_dtype();
    // Every layer has the same shapes.
    const DecoderLayerWeights& l = weights_.layers[size_t(stage.first_layer)];
    const int64_t q_rows = int64_t(config_.num_attention_heads) * config_.head_dim;
    backend.prepare_linear_rope_qkv(l.qkv_w, QkvProducts::kPerProjection, q_rows, max_tokens);
    if (batches && qkv_products_for(2, backend) == QkvProducts::kOne)
      backend.prepare_linear_rope_qkv(l.qkv_w, QkvProducts::kOne, q_rows, max_tokens);
    for (const Tensor* w : {&l.o_w, &l.gate_up_w, &l.down_w})
      backend.prepare_linear(*w, false, dt, max_tokens);
  }
}

void Decoder::forward(KvCache& cache, const std::vector<int32_t>& ids,
                      const std::vector<int32_t>& positions, const ChunkImageRows* images,
                      Tensor* logits) {
  const int64_t n = int64_t(ids.size());
  const int64_t start = cache.length();
  QWENVL_CHECK(n > 0 && int64_t(positions.size()) == 3 * n, "positions for ", n, " tokens");
  for (int32_t id : ids)
    if (id < 0 || id >= config_.vocab_size)
      fail("token id ", id, " is outside the vocabulary of ", config_.vocab_size);
  cache.set_length(start + n);  // Error before any work when the context is full
  // One sequence: the chunk's queries against every cached key, causal from the bottom right
  // (query i sees keys [0, start + i]), its keys in the cache's first rows.
  DecoderBatch batch;
  batch.ids = ids;
  batch.positions = positions;
  batch.slots.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) batch.slots[size_t(i)] = int32_t(start + i);
  batch.cu_q = {0, int32_t(n)};
  batch.cu_k = {0, int32_t(start + n)};
  batch.max_k = int(cache.capacity());
  if (images && !images->chunk_positions.empty()) batch.images.push_back(*images);
  forward(cache, batch, logits);
}

void Decoder::check(const KvCache& cache, const DecoderBatch& batch) const {
  const int64_t n = int64_t(batch.ids.size());
  const int sequences = int(batch.cu_q.size()) - 1;
  QWENVL_CHECK(n > 0 && int64_t(batch.positions.size()) == 3 * n &&
                   int64_t(batch.slots.size()) == n && sequences >= 1 &&
                   batch.cu_k.size() == batch.cu_q.size() && batch.cu_q.back() == n,
               "a decoder batch of ", n, " rows");
  QWENVL_CHECK(batch.block_table.empty() ||
                   (batch.block_size > 0 &&
                    int64_t(batch.block_table.size()) == int64_t(sequences) * batch.table_stride),
               "a block table of ", batch.block_table.size(), " entries");
  for (int32_t id : batch.ids)
    if (id < 0 || id >= config_.vocab_size)
      fail("token id ", id, " is outside the vocabulary of ", config_.vocab_size);
  for (int32_t slot : batch.slots)
    QWENVL_CHECK(slot >= 0 && slot < cache.capacity(), "cache slot ", slot);
}

void Decoder::forward(KvCache& cache, const DecoderBatch& batch, Tensor* logits) {
  check(cache, batch);
  const int64_t n = int64_t(batch.ids.size());
  const int sequences = int(batch.cu_q.size()) - 1;
  // Between stages the residual stream and its norm travel through the host, in f32.
  const Shape rows{n, int64_t(config_.hidden_size)};
  Tensor host_x, host_normed;
  if (stages_.size() > 1)
    host_x = Tensor::empty(rows, DType::F32), host_normed = Tensor::empty(rows, DType::F32);
  for (const DecoderStage& stage : stages_) {
    Backend& backend = *stage.backend;
    const size_t mark = backend.workspace_mark();
    DecoderInputs inputs;
    if (stage.embeds) {
      inputs.ids = upload_indices(backend, batch.ids);
      for (const ChunkImageRows& images : batch.images) {
        inputs.image_rows.push_back(
            images.embeddings->rows(images.first_row, int64_t(images.chunk_positions.size())));
        inputs.image_slots.push_back(upload_indices(backend, images.chunk_positions));
      }
    }
    if (stage.first_layer < stage.end_layer) {
      inputs.positions = upload_indices(backend, batch.positions, {3, n});
      inputs.slots = upload_indices(backend, batch.slots);
      inputs.segments = make_segments(backend, batch.cu_q, batch.cu_k, true,
                                      1.0f / std::sqrt(float(config_.head_dim)));
      if (batch.max_k > 0) inputs.segments.max_k = batch.max_k;
      if (!batch.block_table.empty()) {
        inputs.segments.block_table =
            upload_indices(backend, batch.block_table, {sequences, batch.table_stride});
        inputs.segments.block_size = batch.block_size;
      }
    }
    if (stage.head && !batch.logit_rows.empty())
      inputs.logit_rows = upload_indices(backend, batch.logit_rows);
    inputs.qkv = qkv_products_for(sequences, backend);
    if (stages_.size() == 1) {
      run(backend, cache, inputs, logits);
    } else {
      Tensor x = backend.alloc(rows, backend.compute_dtype());
      Tensor normed = backend.alloc(rows, backend.compute_dtype());
      if (!stage.embeds) {
        backend.copy_from_host(host_x, x);
        backend.copy_from_host(host_normed, normed);
      }
      run_stage(stage, cache, inputs, x, normed, logits);
      if (!stage.head) {
        backend.copy_to_host(x, host_x);
        backend.copy_to_host(normed, host_normed);
        backend.synchronize();
      }
    }
    backend.workspace_release(mark);
  }
}

void Decoder::run(Backend& backend, KvCache& cache, const DecoderInputs& in, Tensor* logits) {
  QWENVL_CHECK(stages_.size() == 1 && stages_.front().backend == &backend,
               "Decoder::run on a decoder of ", stages_.size(), " stages");
  const size_t mark = backend.workspace_mark();
  const Shape rows{in.ids.dim(0), int64_t(config_.hidden_size)};
  Tensor x = backend.alloc(rows, backend.compute_dtype());
  Tensor normed = backend.alloc(rows, backend.compute_dtype());
  run_stage(stages_.front(), cache, in, x, normed, logits);
  backend.workspace_release(mark);
}

void Decoder::run_stage(const DecoderStage& stage, KvCache& cache, const DecoderInputs& in,
                        Tensor& x, Tensor& normed, Tensor* logits) {
  Backend& backend = *stage.backend;
  const int64_t n = x.dim(0);
  const float eps = config_.rms_norm_eps;
  if (stage.embeds) {
    backend.gather_rows(weights_.embed_tokens, in.ids, x);
    for (size_t i = 0; i < in.image_slots.size(); ++i)
      backend.scatter_rows(in.image_rows[i], in.image_slots[i], x);
    // Each layer ends with the next one's input norm (the last with the final norm), so that the
    // norm shares a kernel with the product before it.
    backend.rms_norm(x, weights_.embed_norm, eps, normed);
    if (tap_) tap_(0, backend, x.rows(n - 1, 1));
  }
  if (stage.first_layer < stage.end_layer) {
    // A streamed layer's weights arrive in its slot while the layers before it run.
    backend.begin_streamed_pass(kDecoderLayerSequence);
    for (int l = stage.first_layer; l < stage.end_layer; ++l) {
      const DecoderLayerWeights& w = weights_.layers[size_t(l)];
      if (w.streamed_group >= 0) backend.use_streamed_group(w.streamed_group);
      layer(backend, l, w, cache.keys(l), cache.values(l), x, normed, w.next_norm, in);
      if (w.streamed_group >= 0) backend.streamed_group_done(w.streamed_group);
      if (tap_) tap_(3 * l + 3, backend, x.rows(n - 1, 1));
    }
  }
  // Only the logits asked for: lm_head on the last row, or on the rows listed.
  if (stage.head && logits) {
    const int64_t vocab = config_.vocab_size;
    if (!in.logit_rows.defined()) {
      Tensor logits_row = logits->view({1, vocab});
      backend.linear(normed.rows(n - 1, 1), weights_.lm_head, nullptr, logits_row);
    } else {
      const int64_t count = in.logit_rows.numel();
      QWENVL_CHECK(logits->numel() >= count * vocab, "logits for ", count, " rows");
      const size_t mark = backend.workspace_mark();
      Tensor picked = backend.alloc({count, normed.dim(1)}, backend.compute_dtype());
      backend.gather_rows(normed, in.logit_rows, picked);
      Tensor out = logits->view({logits->numel()}).rows(0, count * vocab).view({count, vocab});
      backend.linear(picked, weights_.lm_head, nullptr, out);
      backend.workspace_release(mark);
    }
  }
}

void Decoder::layer(Backend& backend, int index, const DecoderLayerWeights& w, Tensor& k_cache,
                    Tensor& v_cache, Tensor& x, Tensor& normed, const Tensor& next_norm,
                    const DecoderInputs& in) {
  const size_t mark = backend.workspace_mark();
  const int64_t n = x.dim(0), d = config_.hidden_size, f = config_.intermediate_size;
  const int64_t heads = config_.num_attention_heads, kv_heads = config_.num_key_value_heads;
  const int64_t hd = config_.head_dim;
  const DType dt = backend.compute_dtype();
  const float eps = config_.rms_norm_eps;

  // x = x + o_proj(attention(rope(q), cache ∪ rope(k), cache ∪ v)), with q, k, v from
  // normed = input_layernorm(x); then normed = post_attention_layernorm(x).
  Tensor qkv = backend.alloc({n, (heads + 2 * kv_heads) * hd}, dt);
  Tensor q = backend.alloc({n, heads, hd}, dt);
  // The checkpoint's q, k and v projections are separate layers (stacked at load for decode).
  backend.linear_rope_qkv(normed, w.qkv_w, w.qkv_b, in.qkv, in.positions, rope_, in.slots, qkv, q,
                          k_cache, v_cache);
  // Attention for one new token reads little of memory while it runs; a backend that can use the
  // lull to fetch the next products' weights ahead of them does. (A prompt's attention is busy.)
  if (n == 1) {
    backend.prefetch(w.o_w);
    backend.prefetch(w.gate_up_w);
  }
  Tensor attended = backend.alloc({n, heads, hd}, dt);
  backend.attention(q, k_cache, v_cache, in.segments, attended);
  Tensor delta = backend.alloc({n, d}, dt);
  const Tensor attended_rows = attended.view({n, heads * hd});
  if (tap_) tap_(3 * index + 1, backend, attended_rows.rows(n - 1, 1));
  backend.linear_add_rms_norm(attended_rows, w.o_w, x, w.post_attention_norm, eps, delta, normed);
  if (tap_) tap_(3 * index + 2, backend, x.rows(n - 1, 1));

  // x = x + down(silu(gate(normed)) * up(normed)); then normed = next_norm(x).
  Tensor gate_up = backend.alloc({n, 2 * f}, dt);
  Tensor hidden = backend.alloc({n, f}, dt);
  backend.linear_swiglu(normed, w.gate_up_w, nullptr, gate_up, hidden);
  backend.linear_add_rms_norm(hidden, w.down_w, x, next_norm, eps, delta, normed);
  backend.workspace_release(mark);
}

}  // namespace qwenvl
