#include "model/decoder.h"

#include <cmath>

#include "core/error.h"
#include "model/device_indices.h"
#include "model/rope.h"

namespace qwenvl {

DecoderWeights load_decoder_weights(const TextConfig& c, WeightLoader& loader,
                                    const WeightPlacement& placement) {
  DecoderWeights w;
  w.embed_tokens = loader.get("model.embed_tokens.weight");
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = cat("model.layers.", l, ".");
    DecoderLayerWeights lw;
    // The input norm stays resident: the layer before ends with it (see run).
    lw.input_norm = loader.get(p + "input_layernorm.weight");
    const bool streamed = placement.streams_layer(l);
    if (streamed) loader.begin_group(kDecoderLayerSequence);
    lw.post_attention_norm = loader.get(p + "post_attention_layernorm.weight");
    const std::string a = p + "self_attn.";
    lw.qkv_w = loader.stacked({a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"});
    lw.qkv_b = loader.stacked({a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"});
    lw.o_w = loader.get(a + "o_proj.weight");
    lw.gate_up_w = loader.stacked({p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"});
    lw.down_w = loader.get(p + "mlp.down_proj.weight");
    if (streamed) lw.streamed_group = loader.end_group();
    w.layers.push_back(std::move(lw));
  }
  w.norm = loader.get("model.norm.weight");
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens : loader.get("lm_head.weight");
  return w;
}

Decoder::Decoder(const TextConfig& config, DecoderWeights weights)
    : config_(config), weights_(std::move(weights)) {
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

void Decoder::prepare(Backend& backend, int64_t max_tokens) const {
  if (weights_.layers.empty()) return;
  const DType dt = backend.compute_dtype();
  const DecoderLayerWeights& l = weights_.layers.front();  // every layer has the same shapes
  backend.prepare_linear_rope_qkv(l.qkv_w, QkvProducts::kPerProjection,
                                  int64_t(config_.num_attention_heads) * config_.head_dim,
                                  max_tokens);
  for (const Tensor* w : {&l.o_w, &l.gate_up_w, &l.down_w})
    backend.prepare_linear(*w, false, dt, max_tokens);
}

void Decoder::forward(Backend& backend, KvCache& cache, const std::vector<int32_t>& ids,
                      const std::vector<int32_t>& positions, const ChunkImageRows* images,
                      Tensor* logits) {
  const int64_t n = int64_t(ids.size());
  const int64_t start = cache.length();
  QWENVL_CHECK(n > 0 && int64_t(positions.size()) == 3 * n, "positions for ", n, " tokens");
  for (int32_t id : ids)
    if (id < 0 || id >= config_.vocab_size)
      fail("token id ", id, " is outside the vocabulary of ", config_.vocab_size);
  cache.set_length(start + n);  // Error before any work when the context is full
  const size_t mark = backend.workspace_mark();
  DecoderInputs inputs;
  inputs.ids = upload_indices(backend, ids);
  inputs.positions = upload_indices(backend, positions, {3, n});
  std::vector<int32_t> slots(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) slots[size_t(i)] = int32_t(start + i);
  inputs.slots = upload_indices(backend, slots);
  // One segment: the chunk's queries against every cached key, causal from the bottom right
  // (query i sees keys [0, start + i]).
  inputs.segments = make_segments(backend, {0, int32_t(n)}, {0, int32_t(start + n)}, true,
                                  1.0f / std::sqrt(float(config_.head_dim)));
  inputs.segments.max_k = int(cache.capacity());
  if (images && !images->chunk_positions.empty()) {
    inputs.image_rows =
        images->embeddings->rows(images->first_row, int64_t(images->chunk_positions.size()));
    inputs.image_slots = upload_indices(backend, images->chunk_positions);
  }
  run(backend, cache, inputs, logits);
  backend.workspace_release(mark);
}

void Decoder::run(Backend& backend, KvCache& cache, const DecoderInputs& in, Tensor* logits) {
  const int64_t n = in.ids.dim(0);
  const int64_t d = config_.hidden_size;
  const DType dt = backend.compute_dtype();
  const float eps = config_.rms_norm_eps;
  const size_t mark = backend.workspace_mark();
  Tensor x = backend.alloc({n, d}, dt);
  Tensor normed = backend.alloc({n, d}, dt);
  backend.gather_rows(weights_.embed_tokens, in.ids, x);
  if (in.image_slots.defined()) backend.scatter_rows(in.image_rows, in.image_slots, x);

  // Each layer ends with the next one's input norm (the last with the final norm), so that the
  // norm shares a kernel with the product before it.
  backend.rms_norm(x, weights_.layers.front().input_norm, eps, normed);
  if (tap_) tap_(0, x.rows(n - 1, 1));
  // A streamed layer's weights arrive in its slot while the layers before it run.
  backend.begin_streamed_pass(kDecoderLayerSequence);
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const DecoderLayerWeights& w = weights_.layers[l];
    if (w.streamed_group >= 0) backend.use_streamed_group(w.streamed_group);
    const Tensor& next_norm =
        l + 1 < weights_.layers.size() ? weights_.layers[l + 1].input_norm : weights_.norm;
    layer(backend, int(l), w, cache.keys(int(l)), cache.values(int(l)), x, normed, next_norm,
          in.positions, in.slots, in.segments);
    if (w.streamed_group >= 0) backend.streamed_group_done(w.streamed_group);
    if (tap_) tap_(3 * int(l) + 3, x.rows(n - 1, 1));
  }

  // Only the last position's logits are needed: lm_head on one row.
  if (logits) {
    Tensor logits_row = logits->view({1, int64_t(config_.vocab_size)});
    backend.linear(normed.rows(n - 1, 1), weights_.lm_head, nullptr, logits_row);
  }
  backend.workspace_release(mark);
}

void Decoder::layer(Backend& backend, int index, const DecoderLayerWeights& w, Tensor& k_cache,
                    Tensor& v_cache, Tensor& x, Tensor& normed, const Tensor& next_norm,
                    const Tensor& positions, const Tensor& slots,
                    const AttentionSegments& segments) {
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
  backend.linear_rope_qkv(normed, w.qkv_w, w.qkv_b, QkvProducts::kPerProjection, positions, rope_,
                          slots, qkv, q, k_cache, v_cache);
  // Attention for one new token reads little of memory while it runs; a backend that can use the
  // lull to fetch the next products' weights ahead of them does. (A prompt's attention is busy.)
  if (n == 1) {
    backend.prefetch(w.o_w);
    backend.prefetch(w.gate_up_w);
  }
  Tensor attended = backend.alloc({n, heads, hd}, dt);
  backend.attention(q, k_cache, v_cache, segments, attended);
  Tensor delta = backend.alloc({n, d}, dt);
  const Tensor attended_rows = attended.view({n, heads * hd});
  if (tap_) tap_(3 * index + 1, attended_rows.rows(n - 1, 1));
  backend.linear_add_rms_norm(attended_rows, w.o_w, x, w.post_attention_norm, eps, delta, normed);
  if (tap_) tap_(3 * index + 2, x.rows(n - 1, 1));

  // x = x + down(silu(gate(normed)) * up(normed)); then normed = next_norm(x).
  Tensor gate_up = backend.alloc({n, 2 * f}, dt);
  Tensor hidden = backend.alloc({n, f}, dt);
  backend.linear_swiglu(normed, w.gate_up_w, nullptr, gate_up, hidden);
  backend.linear_add_rms_norm(hidden, w.down_w, x, next_norm, eps, delta, normed);
  backend.workspace_release(mark);
}

}  // namespace qwenvl
