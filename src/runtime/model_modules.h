#pragma once
// A Qwen2.5-VL model as the modules a memory plan places, in forward order and named as
// transformers' device_map names them: "visual", "model.embed_tokens", "model.layers.N",
// "model.norm", "lm_head" (absent when tied to the embeddings).
#include <cstdint>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "core/dtype.h"

namespace qwenvl {

struct ModelModule {
  std::string name;
  int64_t weight_bytes = 0;  // on a device that holds weights in `dtype` (model_modules)
  int layer = -1;            // the decoder layer's index, -1 for the other modules
  // Whether a decode step reads the whole module (not the vision tower, which runs on images
  // only, nor the embedding table, of which a step reads one row unless lm_head is tied to it).
  bool read_per_token = true;
  // When the module streams (model/weight_placement.h): the bytes that move to host memory, and
  // the largest group they are copied in (a decoder layer but its input norm, which stays
  // resident; the vision tower's blocks one by one, its patch embedding and merger resident).
  // Zero for a module that cannot stream (embeddings, final norm, lm_head).
  int64_t streamed_bytes = 0;
  int64_t stream_group_bytes = 0;
  bool streamable() const { return streamed_bytes > 0; }
};

// The modules of `config` with their weight bytes as the model's WeightLoader counts them for a
// backend holding weights in `dtype` (bf16 / fp16): from expected_tensors(config), each allocation
// rounded up to kAllocationAlignment, q/k/v and gate/up stacked into one allocation, and the
// vision MLP's width stored residue first (vision_mlp_width), AWQ-quantized projections as packed
// 4-bit weights (backend/packed_int4.h), projections converted at load (--quantize fp8) as FP8
// ones (backend/packed_fp8.h).
std::vector<ModelModule> model_modules(const ModelConfig& config, DType dtype);

}  // namespace qwenvl
