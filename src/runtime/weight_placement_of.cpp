#include "runtime/weight_placement_of.h"

#include "core/error.h"

namespace qwenvl {

WeightPlacement weight_placement_of(const PlacementPlan& plan, const ModelConfig& config) {
  WeightPlacement placement;
  placement.slots = int(kStreamSlots);
  placement.stream_layers.assign(size_t(config.text.num_hidden_layers), false);
  int gpu = -1;
  for (const PlacedModule& m : plan.modules) {
    if (m.placement == Placement::Cpu)
      fail_resource("the plan runs ", m.name,
                    " on the CPU, which qwenvl does not run beside a GPU yet: give the GPU more "
                    "memory or use --offload stream");
    if (gpu >= 0 && m.gpu != gpu)
      fail_resource("the plan spreads the model over several GPUs (", m.name, " on cuda:", m.gpu,
                    "), which qwenvl does not run yet: give one GPU the budget, e.g. "
                    "--max-memory cuda:1=0");
    gpu = m.gpu;
    if (m.placement != Placement::Stream) continue;
    if (m.name == "visual") {
      placement.stream_vision_blocks = true;
    } else if (m.name.rfind("model.layers.", 0) == 0) {
      const int layer = std::stoi(m.name.substr(std::string("model.layers.").size()));
      QWENVL_CHECK(layer >= 0 && layer < config.text.num_hidden_layers, "layer ", layer);
      placement.stream_layers[size_t(layer)] = true;
    } else {
      fail_internal("the plan streams ", m.name, ", which cannot stream");
    }
  }
  return placement;
}

}  // namespace qwenvl
