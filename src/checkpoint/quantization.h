#pragma once
// config.json's `quantization_config`: which weights are stored quantized and how. qwenvl reads
// the format of the official Qwen2.5-VL-*-AWQ checkpoints (AutoAWQ's GEMM layout):
//   {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": true, "version": "gemm",
//    "modules_to_not_convert": ["visual"]}
// Only the decoder layers' projections are quantized (AutoAWQ quantizes the language model's
// layers; embeddings, lm_head and the vision tower stay 16-bit), minus the modules listed.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace qwenvl {

struct QuantizationConfig {
  std::string method;  // "" (not quantized) or "awq"
  int bits = 0;
  int64_t group_size = 0;
  std::vector<std::string> modules_to_not_convert;

  bool awq() const { return method == "awq"; }
  // Whether the linear layer `module` ("model.layers.3.mlp.down_proj") is stored quantized:
  // a decoder layer's projection whose name contains none of modules_to_not_convert (the
  // substring match of transformers' replace_with_awq_linear).
  bool quantizes(const std::string& module) const;
};

// Reads root["quantization_config"] (absent or null: not quantized). Error naming the field for
// any method, bit width, version or zero-point setting qwenvl cannot run.
QuantizationConfig parse_quantization_config(const nlohmann::json& root, const std::string& source);

}  // namespace qwenvl
