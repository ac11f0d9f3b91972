#pragma once
// config.json of a Qwen2.5-VL checkpoint, in either layout: the official flat one (text fields at
// the top level, `vision_config` nested, rope_scaling {"type": "mrope", "mrope_section": [...]})
// and the nested one transformers 5 writes (`text_config`, `rope_type`).
#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/quantization.h"

namespace qwenvl {

struct VisionConfig {
  int depth = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_heads = 0;
  int in_channels = 3;
  int patch_size = 14;
  int spatial_merge_size = 2;
  int temporal_patch_size = 2;
  int window_size = 112;    // pixels
  int out_hidden_size = 0;  // = text hidden_size
  std::vector<int> fullatt_block_indexes;
  std::string hidden_act = "silu";
  int tokens_per_second = 2;  // for video temporal positions
  float rms_norm_eps = 1e-6f;
};

struct TextConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int head_dim = 0;  // hidden_size / num_attention_heads
  int max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 1000000.0f;
  std::vector<int> mrope_section;  // sums to head_dim / 2
  bool tie_word_embeddings = false;
  std::string hidden_act = "silu";
};

struct ModelConfig {
  std::string model_type;   // "qwen2_5_vl"
  std::string torch_dtype;  // "bfloat16", "float16", "float32" (dtype in transformers 5)
  TextConfig text;
  VisionConfig vision;
  int32_t image_token_id = 151655;
  int32_t video_token_id = 151656;
  int32_t vision_start_token_id = 151652;
  int32_t vision_end_token_id = 151653;
  QuantizationConfig quantization;  // method "" when the weights are 16-bit
};

// Reads and validates DIR/config.json; throws Error naming the field for anything missing or
// inconsistent, and for model types other than Qwen2.5-VL.
ModelConfig load_model_config(const std::string& model_dir);
ModelConfig parse_model_config(const std::string& json_text, const std::string& source_name);

}  // namespace qwenvl
