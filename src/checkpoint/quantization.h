#pragma once
// config.json's `quantization_config`: which weights are stored quantized and how. qwenvl reads
// the format of the official Qwen2.5-VL-*-AWQ checkpoints (AutoAWQ's GEMM layout):
//   {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": true, "version": "gemm",
//    "modules_to_not_convert": ["visual"]}
// Only the decoder layers' projections are quantized (AutoAWQ quantizes the language model's
// layers; embeddings, lm_head and the vision tower stay 16-bit), minus the modules listed.
// `--quantize fp8` is not in config.json: it asks the loader to convert a 16-bit checkpoint's
// decoder projections to FP8 E4M3 as they load (backend/packed_fp8.h).
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
  // `--quantize fp8` (apply_quantize_option): the same projections that AWQ quantizes (q/k/v/o,
  // gate/up/down of every decoder layer), stored 16-bit, become FP8 while loading.
  bool fp8_at_load = false;

  bool awq() const { return method == "awq"; }
  // Whether the linear layer `module` ("model.layers.3.mlp.down_proj") is stored quantized:
  // a decoder layer's projection whose name contains none of modules_to_not_convert (the
  // substring match of transformers' replace_with_awq_linear).
  bool quantizes(const std::string& module) const;
  // Whether the loader converts `module` ("model.layers.3.mlp.down_proj") to FP8: with
  // fp8_at_load, a decoder layer's projection.
  bool converts_to_fp8(const std::string& module) const;
};

// Reads root["quantization_config"] (absent or null: not quantized). Error naming the field for
// any method, bit width, version or zero-point setting qwenvl cannot run.
QuantizationConfig parse_quantization_config(const nlohmann::json& root, const std::string& source);

// `--quantize VALUE` for the checkpoint whose config is `q` ("" leaves it as it is; "fp8" sets
// fp8_at_load). Error for any other value, and for fp8 on a checkpoint stored quantized already.
void apply_quantize_option(QuantizationConfig& q, const std::string& value);

}  // namespace qwenvl
