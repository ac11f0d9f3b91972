#pragma once
// Where the model's weights go, as the runtime's memory plan decides: which of the model's
// backends (Qwen25VL's list; a GPU, the CPU) runs each module, and which weights stay resident
// on their backend and which are streamed: held in host memory and copied to the device for each
// use (Backend's streamed weights). A streamed decoder layer or vision block is one group of its
// sequence.
#include <algorithm>
#include <cstddef>
#include <vector>

namespace qwenvl {

// The sequences of streamed groups, each used in order once per pass
// (Backend::begin_streamed_pass).
constexpr int kVisionBlockSequence = 0;
constexpr int kDecoderLayerSequence = 1;

struct WeightPlacement {
  // The vision tower's blocks (its patch embedding and merger stay resident: a few percent of it).
  bool stream_vision_blocks = false;
  std::vector<bool> stream_layers;  // per decoder layer; missing entries: resident
  // Device buffers the streamed groups take in turn: two let one group's copy overlap the
  // previous group's compute.
  int slots = 2;

  // The backend (an index into the model's list) of each module; missing entries: 0. model.norm
  // goes with the last decoder layer, which ends with it.
  int vision_backend = 0;
  int embed_backend = 0;            // model.embed_tokens
  std::vector<int> layer_backends;  // per decoder layer
  int head_backend = 0;             // lm_head, the logits and the sampler's state

  int backend_of_layer(int layer) const {
    return layer >= 0 && size_t(layer) < layer_backends.size() ? layer_backends[size_t(layer)] : 0;
  }
  // How many backends the placement names (1 + the largest index).
  int backends() const {
    int last = std::max({vision_backend, embed_backend, head_backend});
    for (int b : layer_backends) last = std::max(last, b);
    return last + 1;
  }

  bool streams_layer(int layer) const {
    return layer >= 0 && size_t(layer) < stream_layers.size() && stream_layers[size_t(layer)];
  }
  bool any() const {
    if (stream_vision_blocks) return true;
    for (bool s : stream_layers)
      if (s) return true;
    return false;
  }
};

}  // namespace qwenvl
