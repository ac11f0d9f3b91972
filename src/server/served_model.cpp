#include "server/served_model.h"

#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "runtime/generation_config.h"

namespace qwenvl {

namespace {
constexpr int64_t kDefaultMaxTokens = 256;
}

std::unique_ptr<ServedModel> load_served_model(const ServeOptions& options,
                                               const Qwen25VL::LoadProgress& progress) {
  auto served = std::make_unique<ServedModel>(
      ServedModel{std::filesystem::path(options.model_dir).lexically_normal().filename().string(),
                  load_model_files(options.model_dir),
                  nullptr,
                  {},
                  std::nullopt,
                  {},
                  std::nullopt,
                  std::nullopt,
                  {}});
  if (served->name.empty())
    served->name = std::filesystem::path(options.model_dir).parent_path().filename().string();
  apply_quantize_option(served->files.config.quantization, options.quantize);
  const ModelFiles& files = served->files;
  const PreprocessConfig& pre = files.preprocess;

  ModelLimits& limits = served->limits;
  limits.max_context = model_max_context(files.config, options.max_context);
  limits.max_sequences = options.max_sequences;
  limits.kv_cache_tokens = options.kv_cache_tokens;
  if (limits.max_sequences > limits.prefill_chunk)
    fail("--max-num-seqs ", limits.max_sequences, " exceeds the prefill chunk of ",
         limits.prefill_chunk, " tokens");
  int64_t max_pixels = options.max_pixels ? options.max_pixels : pre.max_pixels;
  check_pixel_bounds(std::min(pre.min_pixels, max_pixels), max_pixels, "--max-pixels");
  const int64_t patch_area = int64_t(pre.patch_size) * pre.patch_size;
  const int64_t merge_area = int64_t(pre.merge_size) * pre.merge_size;
  limits.max_image_patches = max_pixels / patch_area;
  limits.max_image_tokens =
      options.max_image_tokens ? options.max_image_tokens : limits.max_image_patches / merge_area;

  served->backend = make_backend(options.device, options.cuda_dtype, options.threads);
  served->backend->set_batch_invariant(options.batch_invariant);
  const bool on_gpu = served->backend->device() == Device::CUDA;
  if (!on_gpu && (!options.placement.max_memory.empty() || !options.placement.device_map.empty()))
    fail("--max-memory and --device-map place the model on GPUs: use --device cuda");
  WeightPlacement placement;
  if (on_gpu) {
    const std::vector<int64_t> gpu_free = gpu_free_memory();
    try {
      served->placement = plan_gpu_placement(files.config, options.cuda_dtype, limits, pre,
                                             options.placement, gpu_free);
    } catch (const Error& e) {
      // Without --max-pixels or --max-image-tokens, the largest image the budgets hold is the cap.
      if (e.kind() != ErrorKind::ResourceLimit || options.max_pixels || options.max_image_tokens ||
          limits.max_image_patches == 0)
        throw;
      const int64_t cap = image_tokens_the_budgets_hold(files.config, options.cuda_dtype, limits,
                                                        pre, options.placement, gpu_free);
      if (cap < 1) throw;
      max_pixels = std::max(pre.min_pixels, cap * merge_area * patch_area);
      limits.max_image_patches = max_pixels / patch_area;
      limits.max_image_tokens = limits.max_image_patches / merge_area;
      std::fprintf(stderr,
                   "qwenvl serve: the memory budget holds images of up to %lld tokens "
                   "(%lld pixels), not the processor's max_pixels: larger images are "
                   "downscaled\n",
                   (long long)limits.max_image_tokens, (long long)max_pixels);
      served->placement = plan_gpu_placement(files.config, options.cuda_dtype, limits, pre,
                                             options.placement, gpu_free);
    }
    placement = served->placement->placement;
  }
  served->checkpoint.emplace(Checkpoint::open(options.model_dir, files.config));
  served->backends = model_backends(*served->backend, placement, options.threads);
  served->model.emplace(files.config, *served->checkpoint, served->backends.list, limits, placement,
                        progress);
  served->model->warm_up();

  RequestDefaults& defaults = served->defaults;
  defaults.generation = files.generation;
  defaults.eos_ids = files.generation.eos_token_ids;
  if (defaults.eos_ids.empty()) defaults.eos_ids.push_back(files.tokenizer.token_id("<|im_end|>"));
  defaults.preprocess = pre;
  defaults.preprocess.max_pixels = std::min(pre.max_pixels, max_pixels);
  defaults.preprocess.min_pixels = std::min(pre.min_pixels, defaults.preprocess.max_pixels);
  defaults.max_context = limits.max_context;
  defaults.max_image_pixels = max_pixels;
  defaults.max_image_tokens = limits.max_image_tokens;
  defaults.default_max_tokens = options.default_max_tokens
                                    ? options.default_max_tokens
                                    : files.generation.max_new_tokens.value_or(kDefaultMaxTokens);
  defaults.default_max_tokens = std::min(defaults.default_max_tokens, limits.max_context - 1);
  defaults.media.allowed_media_dir = options.allowed_media_dir;
  if (!options.allowed_media_domains.empty()) {
    RemoteMediaOptions remote;
    remote.domains = MediaDomains::parse(options.allowed_media_domains);
    defaults.media.remote = std::make_shared<RemoteMediaFetcher>(std::move(remote));
  }
  return served;
}

}  // namespace qwenvl
