#pragma once
// Tensor names on disk -> the canonical (Hub) names the rest of qwenvl uses.
//   Hub files (transformers < 4.52):   visual.*, model.layers.N.*, model.embed_tokens.weight,
//                                      model.norm.weight, lm_head.weight
//   transformers >= 4.52 / 5 saves:    model.visual.*, model.language_model.*, lm_head.*
// (transformers' Qwen2_5_VLForConditionalGeneration._checkpoint_conversion_mapping maps the same
// two prefixes in the other direction.)
#include <optional>
#include <string>

namespace qwenvl {

// The canonical name, or nullopt for a name that belongs to neither layout.
std::optional<std::string> canonical_tensor_name(const std::string& name_on_disk);

}  // namespace qwenvl
