#pragma once
// What every client of the runtime does before it generates (`qwenvl generate` for one request,
// `qwenvl serve` once for all): read a model directory's small files, then, on a GPU, place the
// weights for the limits the model is built with under the memory budgets.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "core/dtype.h"
#include "model/qwen2_5_vl.h"
#include "model/weight_placement.h"
#include "runtime/generation_config.h"
#include "runtime/memory_planner.h"
#include "text/tokenizer.h"
#include "vision/preprocess.h"

namespace qwenvl {

// A model directory's config.json, generation_config.json, preprocessor_config.json and
// tokenizer.json: everything that can fail cheaply, read before any weight.
struct ModelFiles {
  ModelConfig config;
  GenerationConfig generation;
  PreprocessConfig preprocess;
  Tokenizer tokenizer;
};

// Error naming the missing directory or file, or the file that does not parse.
ModelFiles load_model_files(const std::string& model_dir);

// The context limit a client asks for, capped by the model's max_position_embeddings.
int64_t model_max_context(const ModelConfig& config, int64_t requested);

// How the weights go on the GPUs: --max-memory, --offload and a read --device-map.
struct PlacementOptions {
  std::string max_memory;  // empty: each GPU's free memory
  std::string offload = "auto";
  std::map<std::string, std::string> device_map;  // empty: automatic
  // Estimate decode speed from this machine's measured bandwidths (a quick probe, or cached)
  // rather than nominal ones: only worth it when the plan is shown.
  bool measure_bandwidths = false;
  int64_t host_cache_bytes = 0;  // host memory a server's caches keep, within the CPU's budget
};

struct PlannedPlacement {
  PlannerInput input;
  PlacementPlan plan;
  WeightPlacement placement;
};

// The backends a placement runs on, by its indices (runtime/weight_placement_of.h): `gpu`
// (CUDA, or the only backend), then, where the placement runs modules on the CPU, a CPU backend
// of `threads` threads (0: all cores) made here.
struct ModelBackends {
  std::unique_ptr<Backend> cpu;
  std::vector<Backend*> list;
};
ModelBackends model_backends(Backend& gpu, const WeightPlacement& placement, int threads);

// The plan for a model built with `limits` (its context, largest image and images per request)
// under the options' budgets, and the placement it gives. gpu_free: each GPU's free memory
// before qwenvl took any. Error when it cannot fit, or spreads the model over several GPUs.
PlannedPlacement plan_gpu_placement(const ModelConfig& config, DType dtype,
                                    const ModelLimits& limits, const PreprocessConfig& preprocess,
                                    const PlacementOptions& options,
                                    const std::vector<int64_t>& gpu_free);

// The default cap on a request's image tokens when the plan for its images does not fit the
// budgets: the largest image the plan of the same request without images leaves room for
// (PlacementPlan::largest_image_tokens; `limits`' images are ignored). 0 when that plan does not
// fit either.
int64_t image_tokens_the_budgets_hold(const ModelConfig& config, DType dtype,
                                      const ModelLimits& limits, const PreprocessConfig& preprocess,
                                      const PlacementOptions& options,
                                      const std::vector<int64_t>& gpu_free);

}  // namespace qwenvl
