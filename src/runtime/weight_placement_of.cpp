#include "runtime/weight_placement_of.h"

#include "core/error.h"

namespace qwenvl {

WeightPlacement weight_placement_of(const PlacementPlan& plan, const ModelConfig& config) {
  WeightPlacement placement;
  placement.slots = int(kStreamSlots);
  placement.stream_layers.assign(size_t(config.text.num_hidden_layers), false);
  placement.layer_backends.assign(size_t(config.text.num_hidden_layers), kGpuBackend);
  const std::string layer_prefix = "model.layers.";
  int gpu = -1;
  for (const PlacedModule& m : plan.modules) {
    const int backend = m.placement == Placement::Cpu ? kCpuBackend : kGpuBackend;
    if (m.placement != Placement::Cpu) {
      if (gpu >= 0 && m.gpu != gpu)
        fail_resource("the plan spreads the model over several GPUs (", m.name, " on cuda:", m.gpu,
                      "), which qwenvl does not run yet: give one GPU the budget, e.g. "
                      "--max-memory cuda:1=0");
      gpu = m.gpu;
    }
    int layer = -1;
    if (m.name.rfind(layer_prefix, 0) == 0) {
      layer = std::stoi(m.name.substr(layer_prefix.size()));
      QWENVL_CHECK(layer >= 0 && layer < config.text.num_hidden_layers, "layer ", layer);
      placement.layer_backends[size_t(layer)] = backend;
    } else if (m.name == "visual") {
      placement.vision_backend = backend;
    } else if (m.name == "model.embed_tokens") {
      placement.embed_backend = backend;
    } else if (m.name == "model.norm" || m.name == "lm_head") {
      // model.norm runs with the last layer (WeightPlacement); lm_head, which follows it, sets
      // the head's backend, and a tied one, which the planner lists no module for, goes where
      // model.norm does.
      placement.head_backend = backend;
    } else {
      fail_internal("the plan places ", m.name, ", which is not a module of the model");
    }
    if (m.placement != Placement::Stream) continue;
    if (m.name == "visual")
      placement.stream_vision_blocks = true;
    else if (layer >= 0)
      placement.stream_layers[size_t(layer)] = true;
    else
      fail_internal("the plan streams ", m.name, ", which cannot stream");
  }
  return placement;
}

}  // namespace qwenvl
