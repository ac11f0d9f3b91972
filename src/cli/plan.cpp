// `qwenvl plan --model DIR [...]`: where each module of a model would go under per-device memory
// budgets, what each device would hold, how much KV cache and how large an image fit, and an
// estimate of decode speed. Reads config.json (and preprocessor_config.json when present) only:
// it answers before the weights are downloaded.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "backend/backend.h"
#include "checkpoint/config.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "cli/plan_report.h"
#include "core/error.h"
#include "core/file_read.h"
#include "runtime/byte_size.h"
#include "runtime/machine_bandwidths.h"
#include "runtime/memory_planner.h"
#include "runtime/memory_stats.h"
#include "vision/preprocess.h"

namespace qwenvl::cli {

namespace {

constexpr const char* kUsage =
    "usage: qwenvl plan --model DIR [--max-memory SPEC] [--offload stream|cpu|auto]\n"
    "                   [--device-map FILE.json] [--max-context N] [--max-pixels N]\n"
    "                   [--dtype bf16|fp16] [--quantize fp8] [--json] [--nominal]\n"
    "  Plans where each module of the model goes and what each device holds, from config.json\n"
    "  alone (no weights needed).\n"
    "  --max-memory   per-device budgets, e.g. cuda:0=20GiB,cpu=64GiB; a device not named may\n"
    "                 use what is free. Without a GPU here, the GPUs named are planned at\n"
    "                 their budgets.\n"
    "  --offload      where modules that do not fit on the GPUs go: streamed from pinned host\n"
    "                 memory (stream), run on the CPU (cpu); auto = stream\n"
    "  --device-map   a JSON object {module: \"cuda:N\" | N | \"cpu\" | \"stream\"} naming\n"
    "                 every module (visual, model.embed_tokens, model.layers.N, model.norm,\n"
    "                 lm_head)\n"
    "  --max-context  tokens of KV cache to plan (default 32768, at most the model's positions)\n"
    "  --max-pixels   the largest image (default: preprocessor_config.json's; 0: text only)\n"
    "  --quantize fp8 the language model's projections as FP8 E4M3 weights (as generate and\n"
    "                 serve load them)\n"
    "  --nominal      estimate speeds from nominal bandwidths instead of this machine's\n"
    "                 (measured by a quick probe once, then read from the cache)\n";

constexpr int64_t kDefaultMaxContext = 32768;
constexpr int64_t kMaxContextLimit = int64_t(1) << 24;  // as generate's

// The GPUs to plan for: this machine's, with their free memory; on a machine without a GPU
// (or a build without CUDA), those the budgets name, at their budgets.
std::vector<GpuMemory> gpus_to_plan(const std::vector<MemoryBudget>& budgets) {
  std::vector<GpuMemory> gpus;
  for (int64_t free_bytes : gpu_free_memory()) gpus.push_back({free_bytes, false});
  if (!gpus.empty()) return gpus;
  for (const MemoryBudget& b : budgets) {
    if (b.device.kind != DeviceKind::CUDA) continue;
    if (size_t(b.device.index) >= gpus.size()) gpus.resize(size_t(b.device.index) + 1, {0, true});
    gpus[size_t(b.device.index)] = {b.bytes, true};
  }
  return gpus;
}

}  // namespace

int run_plan(int argc, char** argv) {
  Args args(argc, argv,
            {"model", "max-memory", "offload", "device-map", "max-context", "max-pixels", "dtype",
             "quantize"},
            {"json", "nominal", "help"});
  if (args.has("help")) {
    write_stdout(kUsage, true);
    return 0;
  }
  if (!args.positional().empty())
    fail("unexpected argument '", args.positional().front(), "' (see --help)");
  const std::string dir = args.require("model");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    fail("model directory ", dir, " does not exist or is not a directory");

  PlannerInput in;
  in.config = load_model_config(dir);
  apply_quantize_option(in.config.quantization, args.get("quantize").value_or(""));
  const std::filesystem::path path(dir);
  PreprocessConfig pre;
  if (std::filesystem::exists(path / "preprocessor_config.json", ec) ||
      std::filesystem::exists(path / "processor_config.json", ec))
    pre = load_preprocess_config(dir);
  in.patch_size = pre.patch_size;
  in.merge_size = pre.merge_size;
  in.max_pixels = args.get_int("max-pixels", pre.max_pixels, 0, kMaxResizedPixels);
  in.max_context = args.get_int("max-context", kDefaultMaxContext, 1, kMaxContextLimit);
  if (in.config.text.max_position_embeddings > 0)
    in.max_context = std::min<int64_t>(in.max_context, in.config.text.max_position_embeddings);
  const std::string dtype = args.get("dtype").value_or("bf16");
  if (dtype != "bf16" && dtype != "fp16") fail("--dtype: expected bf16 or fp16, got '", dtype, "'");
  in.dtype = dtype == "bf16" ? DType::BF16 : DType::F16;
  in.offload = parse_offload(args.get("offload").value_or("auto"));
  if (auto spec = args.get("max-memory")) in.budgets = parse_memory_budgets(*spec);
  in.gpus = gpus_to_plan(in.budgets);
  if (in.gpus.empty())
    fail(
        "there is no GPU here: name the GPUs to plan for with --max-memory, e.g. "
        "--max-memory cuda:0=80GiB");
  in.host_bytes = int64_t(available_host_bytes());
  if (auto map = args.get("device-map")) in.device_map = read_device_map(*map);
  if (!args.has("nominal")) in.bandwidths = machine_bandwidths();

  const PlacementPlan plan = plan_placement(in);
  if (args.has("json"))
    write_stdout(plan_json(dir, in, plan).dump(2) + "\n", true);
  else
    write_stdout(plan_text(dir, in, plan), true);
  return 0;
}

}  // namespace qwenvl::cli
