#pragma once
// Which of the model's weights stay resident on the backend and which are streamed: held in host
// memory and copied to the device for each use (Backend's streamed weights), as the runtime's
// memory plan decides. A streamed decoder layer or vision block is one group of its sequence.
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
