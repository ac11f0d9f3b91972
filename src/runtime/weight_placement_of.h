#pragma once
// From the memory plan to the model: which backend runs each module and which weights stream
// (model/weight_placement.h).
#include "model/weight_placement.h"
#include "runtime/memory_planner.h"

namespace qwenvl {

// The backends of a placement weight_placement_of gives, by index: the GPU the plan uses, then
// the CPU (only where the plan runs modules there).
constexpr int kGpuBackend = 0;
constexpr int kCpuBackend = 1;

// The placement of a plan qwenvl runs: modules on one GPU (resident there or streamed through
// it) and modules on the CPU, each a stage of the pipeline. Error (before any weight moves) for a
// plan that spreads modules over several GPUs, which is planned but not run yet.
WeightPlacement weight_placement_of(const PlacementPlan& plan, const ModelConfig& config);

}  // namespace qwenvl
