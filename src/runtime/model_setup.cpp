#include "runtime/model_setup.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "runtime/machine_bandwidths.h"
#include "runtime/memory_budget.h"
#include "runtime/memory_stats.h"
#include "runtime/weight_placement_of.h"

namespace qwenvl {

ModelFiles load_model_files(const std::string& model_dir) {
  if (!std::filesystem::is_directory(model_dir))
    fail("model directory ", model_dir, " does not exist");
  ModelConfig config = load_model_config(model_dir);
  const std::filesystem::path tokenizer_path = std::filesystem::path(model_dir) / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_path))
    fail("the model directory has no tokenizer.json (", tokenizer_path.string(), ")");
  GenerationConfig generation = load_generation_config(model_dir);
  PreprocessConfig preprocess = load_preprocess_config(model_dir);
  return {std::move(config), std::move(generation), std::move(preprocess),
          Tokenizer::load(tokenizer_path.string())};
}

int64_t model_max_context(const ModelConfig& config, int64_t requested) {
  if (config.text.max_position_embeddings > 0)
    return std::min<int64_t>(requested, config.text.max_position_embeddings);
  return requested;
}

ModelBackends model_backends(Backend& gpu, const WeightPlacement& placement, int threads) {
  ModelBackends backends;
  backends.list.push_back(&gpu);
  if (placement.backends() > kCpuBackend) {
    backends.cpu = make_backend("cpu", DType::F32, threads);
    backends.list.push_back(backends.cpu.get());
  }
  return backends;
}

PlannedPlacement plan_gpu_placement(const ModelConfig& config, DType dtype,
                                    const ModelLimits& limits, const PreprocessConfig& preprocess,
                                    const PlacementOptions& options,
                                    const std::vector<int64_t>& gpu_free) {
  PlannedPlacement out;
  PlannerInput& in = out.input;
  in.config = config;
  in.dtype = dtype;
  in.max_context = limits.max_context;
  in.max_sequences = limits.max_sequences;
  in.kv_cache_tokens = limits.kv_cache_tokens;
  in.prefill_chunk = limits.prefill_chunk;
  const int64_t patch = preprocess.patch_size;
  in.patch_size = preprocess.patch_size;
  in.merge_size = preprocess.merge_size;
  in.max_pixels = limits.max_image_patches * patch * patch;
  in.request_image_tokens = limits.max_image_tokens;
  if (!options.max_memory.empty()) in.budgets = parse_memory_budgets(options.max_memory);
  in.offload = parse_offload(options.offload);
  for (int64_t free_bytes : gpu_free) in.gpus.push_back({free_bytes, false});
  in.host_bytes = int64_t(available_host_bytes());
  in.host_cache_bytes = options.host_cache_bytes;
  in.device_map = options.device_map;
  if (options.measure_bandwidths) in.bandwidths = machine_bandwidths();
  out.plan = plan_placement(in);
  out.placement = weight_placement_of(out.plan, config);
  return out;
}

int64_t image_tokens_the_budgets_hold(const ModelConfig& config, DType dtype,
                                      const ModelLimits& limits, const PreprocessConfig& preprocess,
                                      const PlacementOptions& options,
                                      const std::vector<int64_t>& gpu_free) {
  ModelLimits text_only = limits;
  text_only.max_image_patches = 0;
  text_only.max_image_tokens = 0;
  try {
    return plan_gpu_placement(config, dtype, text_only, preprocess, options, gpu_free)
        .plan.largest_image_tokens;
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::ResourceLimit) throw;
    return 0;
  }
}

}  // namespace qwenvl
