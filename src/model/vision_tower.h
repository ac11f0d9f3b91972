#pragma once
// Qwen2.5-VL's vision encoder (transformers' Qwen2_5_VisionTransformerPretrainedModel): patch
// embedding, window reordering, RMSNorm + windowed/full attention blocks with 2D rotary
// embeddings, and the 2x2 patch merger into the language model's width.
#include <vector>

#include "backend/backend.h"
#include "checkpoint/config.h"
#include "model/weight_loader.h"
#include "model/window_index.h"

namespace qwenvl {

struct VisionBlockWeights {
  Tensor norm1, norm2;                  // [hidden]
  Tensor q_w, k_w, v_w, q_b, k_b, v_b;  // rows of attn.qkv: [hidden, hidden], [hidden]
  Tensor proj_w, proj_b;                // [hidden, hidden], [hidden]
  Tensor gate_w, gate_b, up_w, up_b;    // [intermediate, hidden], [intermediate]
  Tensor down_w, down_b;                // [hidden, intermediate], [hidden]
};

struct VisionWeights {
  Tensor patch_embed;  // Conv3d [hidden, 3, 2, 14, 14] seen as [hidden, 1176]; no bias
  std::vector<VisionBlockWeights> blocks;
  Tensor merger_norm;               // ln_q [hidden]
  Tensor merger_fc1, merger_fc1_b;  // mlp.0 [4·hidden, 4·hidden]
  Tensor merger_fc2, merger_fc2_b;  // mlp.2 [out_hidden, 4·hidden]
};

VisionWeights load_vision_weights(const VisionConfig& config, WeightLoader& loader);

// Rows the vision MLP processes at once: bounds its activations (2 × intermediate per row)
// independently of the image size.
constexpr int64_t kMlpRows = 4096;

class VisionTower {
 public:
  VisionTower(const VisionConfig& config, VisionWeights weights);

  // One image or video (all its frames): pixel_values f32 host [patches, 1176] as the processor
  // makes them -> out [patches / 4, out_hidden] (compute dtype, allocated by the caller), rows in
  // the processor's merged-unit order (the order of the prompt's pad tokens). Temporaries come from
  // the workspace and are released before returning.
  void encode(Backend& backend, const Tensor& pixel_values, const VisionGrid& grid, Tensor& out);

  // Workspace encode() needs for a grid of `patches` patches, in bytes of `dtype` activations.
  static size_t workspace_bytes(const VisionConfig& config, int64_t patches, DType dtype);

 private:
  void block(Backend& backend, const VisionBlockWeights& w, Tensor& x, const Tensor& positions,
             const AttentionSegments& segments);

  VisionConfig config_;
  VisionWeights weights_;
  RopeSpec rope_;
  int head_dim_ = 0;
};

}  // namespace qwenvl
