#pragma once
// The two rotary embeddings of Qwen2.5-VL as RopeSpecs for Backend::rope.
//
// Vision (Qwen2_5_VisionRotaryEmbedding(head_dim / 2), theta 10000): a patch at row h, column w
// rotates its first head_dim/4 frequency pairs by h·inv_freq and the next head_dim/4 by w·inv_freq
// (transformers builds freqs for h and w separately and concatenates them). Position rows: 0 = h,
// 1 = w.
//
// Text (Qwen2_5_VLRotaryEmbedding + apply_multimodal_rotary_pos_emb): inv_freq over the full
// head_dim with rope_theta; frequency j takes its position from row t, h or w according to which
// mrope_section it falls in ([16, 24, 24] for 128-dim heads). Position rows: 0 = t, 1 = h, 2 = w.
// The text rotation is rounded like transformers' (cos/sin in the activation dtype, products
// rounded); the vision rotation runs in fp32 (RopeSpec::round_in_activation_dtype).
#include <vector>

#include "backend/backend.h"

namespace qwenvl {

// 1 / theta^(2i / dim) for i in [0, dim/2), in float32 arithmetic as torch computes
// `1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))`.
std::vector<float> rope_inv_freq(int dim, float theta);

RopeSpec vision_rope_spec(int head_dim, float theta = 10000.0f);

// Error when the sections do not add up to head_dim / 2 (a malformed config).
RopeSpec mrope_spec(int head_dim, float rope_theta, const std::vector<int>& mrope_section);

}  // namespace qwenvl
