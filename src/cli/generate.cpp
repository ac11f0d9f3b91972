// qwenvl generate: image(s), video(s) + prompt -> text, streamed to stdout. Flags override the
// checkpoint's generation_config.json. With --json the last stdout line is one JSON object
// describing the run (scripts parse it); errors are one line on stderr and a non-zero exit (see
// main.cpp).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/load_progress.h"
#include "cli/model_flags.h"
#include "cli/npy.h"
#include "cli/output.h"
#include "cli/plan_report.h"
#include "cli/video_flags.h"
#include "core/error.h"
#include "model/qwen2_5_vl.h"
#include "runtime/chat_request.h"
#include "runtime/generation_config.h"
#include "runtime/generator.h"
#include "runtime/memory_budget.h"
#include "runtime/memory_planner.h"
#include "runtime/memory_stats.h"
#include "runtime/model_setup.h"
#include "runtime/sampling_limits.h"
#include "runtime/weight_placement_of.h"
#include "text/tokenizer.h"
#include "vision/preprocess.h"

namespace qwenvl::cli {

namespace {

constexpr const char* kUsage =
    "usage: qwenvl generate --model DIR [--image PATH]... [--video PATH]...\n"
    "                       (--prompt TEXT | --prompt-file F) [flags]\n"
    "  --video PATH             a video file (mp4, mov, mkv, webm, avi) or a directory of frame\n"
    "                           images (repeatable); the user turn is the images, then the\n"
    "                           videos, then the prompt, each in the order given\n"
    "  --fps F | --nframes N    frames sampled per second (default 2.0) or in all\n"
    "  --video-start S, --video-end S   the part of each video to sample, in seconds\n"
    "  --video-min-pixels N, --video-max-pixels N, --video-total-pixels N   frame sizes\n"
    "                           (defaults 100352, 602112, and 90316800 shared by the frames)\n"
    "  --prompt-file F          the prompt's text from a file (- for standard input)\n"
    "  --system TEXT            system message (default: the chat template's)\n"
    "  --max-new-tokens N       tokens to generate (default: generation_config or 256)\n"
    "  --temperature T          0 = greedy; --top-k K, --top-p P, --min-p P,\n"
    "  --repetition-penalty R   sampling (defaults: generation_config.json)\n"
    "  --presence-penalty P, --frequency-penalty F   OpenAI's penalties over the output's\n"
    "                           tokens, in [-2, 2] (default 0)\n"
    "  --seed S                 seed of the sampler's draws (default 0)\n"
    "  --ignore-eos             keep going past end-of-sequence tokens\n"
    "  --stop STR               stop at this text (repeatable)\n"
    "  --min-pixels N, --max-pixels N   image resize bounds\n"
    "  --max-image-tokens N     merged tokens all images may take together; larger images\n"
    "                           are downscaled in proportion (a notice on stderr)\n"
    "  --device cpu|cuda|auto   --dtype bf16|fp16 (CUDA activations)   --threads N\n"
    "  --quantize fp8           the language model's projections as FP8 E4M3 weights (a\n"
    "                           16-bit checkpoint, quantized per output channel at load)\n"
    "  --max-context N          context limit (default min(32768, max_position_embeddings))\n"
    "  --max-memory SPEC        GPU budget, e.g. cuda:0=8GiB (default: the GPU's free memory);\n"
    "                           what does not fit streams from pinned host memory\n"
    "  --offload stream|cpu|auto  where modules that do not fit go: streamed through the GPU,\n"
    "                           or computed on the CPU (auto = stream)\n"
    "  --device-map FILE.json   {module: \"cuda:0\" | \"stream\" | \"cpu\"} for every module\n"
    "                           (see plan)\n"
    "  --verbose                print the memory plan on stderr before loading\n"
    "  --json                   print a JSON summary as the last line\n"
    "  --dump-logits FILE.npy   float32 logits at the last prompt position\n"
    "  --dump-activations FILE.npy  float32 [3 * layers + 1, hidden], the last prompt\n"
    "                           position's embedding, then per layer: the attention's output,\n"
    "                           the residual stream after attention and after the MLP\n"
    "  --dump-vision FILE.npy   float32 [image tokens, hidden], the vision tower's output for\n"
    "                           every image of the prompt\n";

constexpr int64_t kDefaultMaxNewTokens = 256;
constexpr int64_t kDefaultMaxContext = 32768;
constexpr int64_t kMaxContextLimit = int64_t(1)
                                     << 24;  // config.cpp bounds max_position_embeddings alike
constexpr int64_t kMaxThreads = 1024;

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

int run_generate(int argc, char** argv) {
  std::vector<std::string> value_flags = {"model",          "image",
                                          "prompt",         "system",
                                          "max-new-tokens", "temperature",
                                          "top-k",          "top-p",
                                          "min-p",          "repetition-penalty",
                                          "seed",           "min-pixels",
                                          "max-pixels",     "device",
                                          "dtype",          "threads",
                                          "dump-logits",    "dump-activations",
                                          "dump-vision",    "stop",
                                          "max-context",    "prompt-file",
                                          "max-memory",     "offload",
                                          "device-map",     "max-image-tokens",
                                          "video",          "quantize"};
  value_flags.insert(value_flags.end(), {"presence-penalty", "frequency-penalty"});
  value_flags.insert(value_flags.end(), video_value_flags().begin(), video_value_flags().end());
  const Args args(argc, argv, value_flags, {"ignore-eos", "json", "help", "verbose"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.positional().empty())
    fail("unexpected argument '", args.positional().front(), "' (see --help)");
  const std::string model_dir = args.require("model");
  if (args.has("prompt") == args.has("prompt-file"))
    fail("give the prompt with exactly one of --prompt and --prompt-file");
  const std::string prompt = args.has("prompt")
                                 ? args.require("prompt")
                                 : read_prompt_file(args.require("prompt-file"), "--prompt-file");
  const bool json = args.has("json");

  // ---- configuration, tokenizer: everything that can fail cheaply comes first.
  auto start = Clock::now();
  ModelFiles files = load_model_files(model_dir);
  apply_quantize_option(files.config.quantization, args.get("quantize").value_or(""));
  const ModelConfig& config = files.config;
  const GenerationConfig& gen = files.generation;
  const Tokenizer& tokenizer = files.tokenizer;
  ChatRequest chat;
  chat.preprocess = files.preprocess;
  chat.preprocess.min_pixels =
      args.get_int("min-pixels", chat.preprocess.min_pixels, 1, kMaxResizedPixels);
  chat.preprocess.max_pixels =
      args.get_int("max-pixels", chat.preprocess.max_pixels, 1, kMaxResizedPixels);
  check_pixel_bounds(chat.preprocess.min_pixels, chat.preprocess.max_pixels,
                     "--min-pixels / --max-pixels");
  const VideoOptions video_options = parse_video_options(args);
  const double config_ms = ms_since(start);  // counted as loading, not preprocessing

  // ---- generation settings: flags over generation_config.json (which load_generation_config
  // has checked), each flag within the range of runtime/sampling_limits.h.
  GenerationRequest request;
  request.max_new_tokens = args.get_int(
      "max-new-tokens", gen.max_new_tokens.value_or(kDefaultMaxNewTokens), 1, kMaxNewTokensLimit);
  request.sampling = gen.sampling();
  SamplingParams& sampling = request.sampling;
  auto setting = [&](const char* flag, float value, const SettingRange& range) {
    return float(args.get_double(flag, value, range.min, range.max));
  };
  sampling.temperature = setting("temperature", sampling.temperature, kTemperatureRange);
  sampling.top_k =
      int(args.get_int("top-k", sampling.top_k, int64_t(kTopKRange.min), int64_t(kTopKRange.max)));
  sampling.top_p = setting("top-p", sampling.top_p, kTopPRange);
  sampling.min_p = setting("min-p", sampling.min_p, kMinPRange);
  sampling.repetition_penalty =
      setting("repetition-penalty", sampling.repetition_penalty, kRepetitionPenaltyRange);
  request.presence_penalty = setting("presence-penalty", 0.0f, kPresencePenaltyRange);
  request.frequency_penalty = setting("frequency-penalty", 0.0f, kFrequencyPenaltyRange);
  request.seed = uint64_t(args.get_int("seed", 0, 0, std::numeric_limits<int64_t>::max()));
  request.eos_token_ids = gen.eos_token_ids;
  if (request.eos_token_ids.empty())
    request.eos_token_ids.push_back(tokenizer.token_id("<|im_end|>"));
  request.ignore_eos = args.has("ignore-eos");
  request.stop = args.all("stop");
  request.keep_prompt_logits = args.has("dump-logits");
  request.keep_prompt_activations = args.has("dump-activations");
  request.keep_image_embeds = args.has("dump-vision");
  const DType cuda_dtype = parse_cuda_dtype(args.get("dtype").value_or("bf16"));
  const int threads = int(args.get_int("threads", 0, 0, kMaxThreads));
  chat.max_context = model_max_context(
      config, args.get_int("max-context", kDefaultMaxContext, 1, kMaxContextLimit));
  chat.max_new_tokens = request.max_new_tokens;

  // ---- the backend, before the images: they are preprocessed into its compute dtype (the values
  // its patch embedding would round them to), and --threads sizes the pool they use.
  start = Clock::now();
  std::unique_ptr<Backend> backend =
      make_backend(args.get("device").value_or("auto"), cuda_dtype, threads);
  const double backend_ms = ms_since(start);
  const bool on_gpu = backend->device() == Device::CUDA;
  if (!on_gpu)
    for (const char* flag : {"max-memory", "offload", "device-map"})
      if (args.has(flag)) fail("--", flag, " places the model on GPUs: use --device cuda");
  // What the CUDA context left free, before qwenvl takes any memory: the budgets' baseline.
  const std::vector<int64_t> gpu_free_at_start =
      on_gpu ? gpu_free_memory() : std::vector<int64_t>{};

  // ---- the request: images' token counts from their headers, the context checked, then the
  // images decoded (images first in the user turn, in the order given).
  start = Clock::now();
  chat.system = args.get("system");
  for (const std::string& path : args.all("image")) chat.images.push_back({path, path, {}});
  for (const std::string& path : args.all("video")) chat.videos.push_back({path, video_options});
  chat.text = prompt;
  chat.max_image_tokens = args.get_int("max-image-tokens", 0, 0, kMaxResizedPixels / (28 * 28));
  PreparedPrompt prepared;
  auto prepare = [&] {
    prepared = prepare_chat_request(chat, tokenizer, config, backend->compute_dtype());
    for (const std::string& notice : prepared.notices)
      std::fprintf(stderr, "qwenvl generate: %s\n", notice.c_str());
    request.prompt_ids = std::move(prepared.prompt_ids);
    request.images = std::move(prepared.images);
    request.videos = std::move(prepared.videos);
    request.video_seconds_per_grid = prepared.video_seconds_per_grid;
  };
  prepare();
  double preprocess_ms = ms_since(start);
  double reprepare_ms = 0;  // images prepared again within the loading, counted as preprocessing
  // The cache and workspaces this request needs.
  auto request_limits = [&] {
    ModelLimits limits;
    limits.max_context = int64_t(request.prompt_ids.size()) + request.max_new_tokens;
    limits.max_image_patches = prepared.max_image_patches;
    limits.max_image_tokens = prepared.image_tokens;
    return limits;
  };

  // ---- weights.
  start = Clock::now();
  const Checkpoint checkpoint = Checkpoint::open(model_dir, config);
  ModelLimits limits = request_limits();
  WeightPlacement placement;
  nlohmann::json planned = nullptr;  // the plan's figures for --json
  if (on_gpu) {
    // The plan for this request: resident what fits the budget, streamed the rest. Images the
    // budgets cannot hold are downscaled to the largest they can (the default cap, unless
    // --max-image-tokens set one), with a notice, and prepared again.
    const PlacementOptions options = placement_options(args);
    std::optional<PlannedPlacement> fitted;
    try {
      fitted.emplace(plan_gpu_placement(config, cuda_dtype, limits, chat.preprocess, options,
                                        gpu_free_at_start));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::ResourceLimit || prepared.image_tokens == 0 ||
          chat.max_image_tokens > 0)
        throw;
      const int64_t cap = image_tokens_the_budgets_hold(config, cuda_dtype, limits, chat.preprocess,
                                                        options, gpu_free_at_start);
      if (cap <= 0) throw;
      std::fprintf(stderr,
                   "qwenvl generate: the images (%lld tokens) do not fit the memory budget, "
                   "which holds %lld: downscaling them to fit\n",
                   (long long)prepared.image_tokens, (long long)cap);
      const auto again = Clock::now();
      chat.max_image_tokens = cap;
      prepare();
      reprepare_ms = ms_since(again);
      preprocess_ms += reprepare_ms;
      limits = request_limits();
      fitted.emplace(plan_gpu_placement(config, cuda_dtype, limits, chat.preprocess, options,
                                        gpu_free_at_start));
    }
    const PlannedPlacement& planned_placement = *fitted;
    const PlacementPlan& plan = planned_placement.plan;
    if (args.has("verbose"))
      std::fputs(plan_text(model_dir, planned_placement.input, plan).c_str(), stderr);
    placement = planned_placement.placement;
    planned = {{"gpu_bytes", plan.devices.front().total()},
               {"streamed_bytes_per_token", plan.decode.streamed_bytes},
               {"resident_bytes_per_token", plan.decode.resident_bytes}};
  }
  const ModelBackends backends = model_backends(*backend, placement, threads);
  std::optional<Qwen25VL> loaded;
  {
    LoadProgress progress;
    loaded.emplace(config, checkpoint, backends.list, limits, placement,
                   [&progress](size_t read, size_t total) { progress.update(read, total); });
  }
  Qwen25VL& model = *loaded;
  const std::vector<int64_t> gpu_free_after_load =
      on_gpu ? gpu_free_memory() : std::vector<int64_t>{};
  model.warm_up();
  const std::vector<int64_t> gpu_free_after_warm_up =
      on_gpu ? gpu_free_memory() : std::vector<int64_t>{};
  const double load_ms = config_ms + backend_ms + ms_since(start) - reprepare_ms;

  // ---- generation, streamed.
  Generator generator(model, tokenizer);
  const GenerationResult result =
      generator.generate(request, [](const std::string& piece) { write_stdout(piece, true); });
  write_stdout("\n", false);

  if (auto path = args.get("dump-logits"))
    write_npy(*path, result.prompt_logits.data(), {int64_t(result.prompt_logits.size())});
  if (auto path = args.get("dump-vision")) {
    const int64_t hidden = model.config().text.hidden_size;
    write_npy(*path, result.image_embeds.data(),
              {int64_t(result.image_embeds.size()) / hidden, hidden});
  }
  if (auto path = args.get("dump-activations")) {
    std::vector<float> rows;
    for (const std::vector<float>& row : result.prompt_activations)
      rows.insert(rows.end(), row.begin(), row.end());
    const int64_t steps = int64_t(result.prompt_activations.size());
    write_npy(*path, rows.data(), {steps, steps ? int64_t(rows.size()) / steps : 0});
  }
  if (json) {
    nlohmann::json grids = nlohmann::json::array();
    for (const ImageInput& image : request.images)
      grids.push_back({image.grid.t, image.grid.h, image.grid.w});
    nlohmann::json video_grids = nlohmann::json::array(), videos = nlohmann::json::array();
    for (size_t i = 0; i < request.videos.size(); ++i) {
      const VisionGrid& grid = request.videos[i].grid;
      video_grids.push_back({grid.t, grid.h, grid.w});
      videos.push_back(video_json(prepared.video_info[i], grid, request.video_seconds_per_grid[i]));
    }
    nlohmann::json peak = {{"cpu", peak_rss_bytes()}};
    nlohmann::json gpu_memory = nullptr;
    if (on_gpu) {
      peak["cuda"] = backend->peak_bytes();
      // The driver's view: what this process took from cuda:0 since its CUDA context was made
      // (every allocation is made at load, so this is also the peak).
      const std::vector<int64_t> free_now = gpu_free_memory();
      if (!free_now.empty() && !gpu_free_at_start.empty())
        gpu_memory = {
            {"free_after_context_bytes", gpu_free_at_start[0]},
            {"used_after_load_bytes", gpu_free_at_start[0] - gpu_free_after_load[0]},
            {"used_after_warm_up_bytes", gpu_free_at_start[0] - gpu_free_after_warm_up[0]},
            {"used_since_context_bytes", gpu_free_at_start[0] - free_now[0]}};
    }
    // The first backend's plan (the GPU's, or the only one), and the layers on the CPU beside it.
    std::vector<DType> computes;
    for (Backend* b : backends.list) computes.push_back(b->compute_dtype());
    const MemoryPlan memory =
        Qwen25VL::plans(config, checkpoint, computes, limits, placement).front();
    int streamed_layers = 0, cpu_layers = 0;
    for (bool streamed : placement.stream_layers) streamed_layers += streamed ? 1 : 0;
    for (int b : placement.layer_backends) cpu_layers += b == kCpuBackend ? 1 : 0;
    const nlohmann::json summary = {
        {"text", result.text},
        {"tokens", result.tokens},
        {"prompt_token_ids", request.prompt_ids},
        {"image_grid_thw", grids},
        {"video_grid_thw", video_grids},
        {"videos", videos},
        {"prompt_tokens", request.prompt_ids.size()},
        {"generated_tokens", result.tokens.size()},
        {"finish_reason", result.finish_reason},
        {"rope_delta", result.positions.rope_delta},
        {"device", backend->name()},
        {"timings",
         {{"load_ms", load_ms},
          {"preprocess_ms", preprocess_ms},
          {"image_load_ms", prepared.image_load_ms},
          {"video_ms", prepared.video_ms},
          {"vision_ms", result.timings.vision_ms},
          {"prefill_ms", result.timings.prefill_ms},
          {"vision_enqueue_ms", result.timings.vision_enqueue_ms},
          {"prefill_enqueue_ms", result.timings.prefill_enqueue_ms},
          {"decode_ms", result.timings.decode_ms},
          {"decode_tokens_per_s", result.timings.decode_tokens_per_s}}},
        {"peak_memory_bytes", peak},
        {"gpu_memory", gpu_memory},
        {"memory_plan",
         {{"resident_weight_bytes", memory.weight_bytes},
          {"persistent_bytes", memory.persistent_bytes},
          {"workspace_bytes", memory.workspace_bytes},
          {"streamed_host_bytes", memory.streamed_host_bytes},
          {"stream_slot_bytes", memory.stream_slot_bytes},
          {"stream_slots", memory.stream_slots},
          {"streamed_layers", streamed_layers},
          {"streamed_vision_blocks", placement.stream_vision_blocks},
          {"cpu_layers", cpu_layers},
          {"planned", planned}}},
    };
    write_stdout(summary.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                 false);
  }
  write_stdout("", true);
  return 0;
}

}  // namespace qwenvl::cli
