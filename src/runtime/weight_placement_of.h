#pragma once
// From the memory plan to the model: which weights a plan streams (model/weight_placement.h).
#include "model/weight_placement.h"
#include "runtime/memory_planner.h"

namespace qwenvl {

// The placement of a plan qwenvl runs: every module on one GPU, resident or streamed through it.
// Error (before any weight moves) for a plan that puts modules on the CPU or on several GPUs,
// which are planned but not run yet.
WeightPlacement weight_placement_of(const PlacementPlan& plan, const ModelConfig& config);

}  // namespace qwenvl
