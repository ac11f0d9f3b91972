// Every weight of Qwen2_5_VLForConditionalGeneration with its shape, as the modules in
// transformers' modeling_qwen2_5_vl.py declare them:
//   Qwen2_5_VisionPatchEmbed: Conv3d(in_channels, hidden, kernel=(temporal_patch, patch, patch),
//     bias=False)
//   Qwen2_5_VLVisionBlock: norm1/norm2 RMSNorm(hidden); attn.qkv Linear(hidden, 3*hidden, bias);
//     attn.proj Linear(hidden, hidden, bias); mlp gate/up Linear(hidden, intermediate, bias),
//     down Linear(intermediate, hidden, bias)
//   Qwen2_5_VLPatchMerger: ln_q RMSNorm(hidden); mlp = [Linear(h*m^2, h*m^2), GELU,
//     Linear(h*m^2, out_hidden)], both with bias
//   Qwen2_5_VLDecoderLayer: q/k/v Linear with bias, o_proj without; Qwen2MLP without biases;
//     input_layernorm / post_attention_layernorm RMSNorm(hidden)
//   model.norm RMSNorm(hidden); lm_head Linear(hidden, vocab, bias=False) unless tied.
// A projection that AWQ quantized is AutoAWQ's WQLinear_GEMM(in_features K, out_features N):
//   qweight I32 [K, N/8], qzeros I32 [K/G, N/8], scales F16 [K/G, N] (G = group_size).
#include "checkpoint/checkpoint.h"
#include "core/error.h"

namespace qwenvl {

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config,
                                             int64_t quantized_mlp_width) {
  std::vector<ExpectedTensor> out;
  auto add = [&](std::string name, Shape shape) {
    out.push_back({std::move(name), shape, std::nullopt});
  };
  const QuantizationConfig& quant = config.quantization;
  // A decoder projection `module` of n outputs and k inputs: its weight, or AWQ's three tensors.
  auto add_linear = [&](const std::string& module, int64_t n, int64_t k) {
    if (!quant.quantizes(module)) return add(module + ".weight", {n, k});
    const int64_t g = quant.group_size;
    if (n % 8 != 0 || k % g != 0)
      fail("config.json: ", module, " (", k, " inputs, ", n,
           " outputs) cannot be stored as 4-bit AWQ with group_size ", g,
           " (the inputs must be a multiple of the group size and the outputs of 8)");
    out.push_back({module + ".qweight", {k, n / 8}, DType::I32});
    out.push_back({module + ".qzeros", {k / g, n / 8}, DType::I32});
    out.push_back({module + ".scales", {k / g, n}, DType::F16});
  };

  const VisionConfig& v = config.vision;
  const int64_t h = v.hidden_size, vi = v.intermediate_size;
  const int64_t merged = h * v.spatial_merge_size * v.spatial_merge_size;
  add("visual.patch_embed.proj.weight",
      {h, v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size});
  for (int b = 0; b < v.depth; ++b) {
    std::string p = cat("visual.blocks.", b, ".");
    add(p + "norm1.weight", {h});
    add(p + "norm2.weight", {h});
    add(p + "attn.qkv.weight", {3 * h, h});
    add(p + "attn.qkv.bias", {3 * h});
    add(p + "attn.proj.weight", {h, h});
    add(p + "attn.proj.bias", {h});
    add(p + "mlp.gate_proj.weight", {vi, h});
    add(p + "mlp.gate_proj.bias", {vi});
    add(p + "mlp.up_proj.weight", {vi, h});
    add(p + "mlp.up_proj.bias", {vi});
    add(p + "mlp.down_proj.weight", {h, vi});
    add(p + "mlp.down_proj.bias", {h});
  }
  add("visual.merger.ln_q.weight", {h});
  add("visual.merger.mlp.0.weight", {merged, merged});
  add("visual.merger.mlp.0.bias", {merged});
  add("visual.merger.mlp.2.weight", {v.out_hidden_size, merged});
  add("visual.merger.mlp.2.bias", {v.out_hidden_size});

  const TextConfig& t = config.text;
  const int64_t d = t.hidden_size, f = t.intermediate_size;
  const int64_t q = int64_t(t.num_attention_heads) * t.head_dim;
  const int64_t kv = int64_t(t.num_key_value_heads) * t.head_dim;
  add("model.embed_tokens.weight", {t.vocab_size, d});
  for (int l = 0; l < t.num_hidden_layers; ++l) {
    std::string p = cat("model.layers.", l, ".");
    add(p + "input_layernorm.weight", {d});
    add(p + "post_attention_layernorm.weight", {d});
    add_linear(p + "self_attn.q_proj", q, d);
    add(p + "self_attn.q_proj.bias", {q});
    add_linear(p + "self_attn.k_proj", kv, d);
    add(p + "self_attn.k_proj.bias", {kv});
    add_linear(p + "self_attn.v_proj", kv, d);
    add(p + "self_attn.v_proj.bias", {kv});
    add_linear(p + "self_attn.o_proj", d, q);
    // A quantized MLP may be stored wider (zero padding), an unquantized one never.
    const auto width = [&](const std::string& module) {
      return quant.quantizes(module) && quantized_mlp_width ? quantized_mlp_width : f;
    };
    add_linear(p + "mlp.gate_proj", width(p + "mlp.gate_proj"), d);
    add_linear(p + "mlp.up_proj", width(p + "mlp.up_proj"), d);
    add_linear(p + "mlp.down_proj", d, width(p + "mlp.down_proj"));
  }
  add("model.norm.weight", {d});
  if (!t.tie_word_embeddings) add("lm_head.weight", {t.vocab_size, d});
  return out;
}

}  // namespace qwenvl
