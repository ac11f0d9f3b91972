#include "runtime/memory_planner.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "checkpoint/awq_checkpoint.h"
#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "core/file_read.h"
#include "model/qwen2_5_vl.h"
#include "model/synthetic_checkpoint.h"
#include "runtime/model_modules.h"

namespace qwenvl {
namespace {

constexpr int64_t kGiB = int64_t(1) << 30;

ModelConfig official(const std::string& size) {
  const std::string path = std::string(QWENVL_FIXTURES_DIR) + "/configs/" + size + ".json";
  return parse_model_config(read_text_file(path, kMaxJsonFileBytes, "config"), path);
}

// A planner input for `size` on GPUs of `gpu_gib` GiB each, free (present) or assumed.
PlannerInput input(const std::string& size, const std::string& budgets, int gpus = 1,
                   int64_t gpu_gib = 141) {
  PlannerInput in;
  in.config = official(size);
  in.budgets = parse_memory_budgets(budgets);
  for (int g = 0; g < gpus; ++g) in.gpus.push_back({gpu_gib * kGiB, false});
  in.host_bytes = 512 * kGiB;
  return in;
}

int64_t weights_of(const std::vector<ModelModule>& modules) {
  int64_t total = 0;
  for (const ModelModule& m : modules) total += m.weight_bytes;
  return total;
}

void expect_within_budgets(const PlacementPlan& plan) {
  for (const DeviceUse& d : plan.devices) EXPECT_LE(d.total(), d.budget) << device_name(d.device);
}

int count(const PlacementPlan& plan, Placement placement) {
  int n = 0;
  for (const PlacedModule& m : plan.modules) n += m.placement == placement;
  return n;
}

std::string error_of(const PlannerInput& in) {
  try {
    plan_placement(in);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// The planner counts weights from the config as the model's loader counts them from a checkpoint:
// the fixture models, and synthetic ones whose vision MLP width (100) is stored residue first.
TEST(MemoryPlanner, WeightBytesEqualTheModelsPlan) {
  std::vector<std::string> dirs;
  for (const char* name : {"tiny-tied", "tiny-untied"})
    dirs.push_back(std::string(QWENVL_FIXTURES_DIR) + "/models/" + name);
  for (bool tied : {true, false})
    dirs.push_back(test::write_synthetic_checkpoint(tied ? "plan_tied" : "plan_untied", tied, 1));
  for (const std::string& dir : dirs) {
    const ModelConfig config = load_model_config(dir);
    const Checkpoint checkpoint = Checkpoint::open(dir, config);
    for (DType dtype : {DType::BF16, DType::F16}) {
      const MemoryPlan expected = Qwen25VL::plan(config, checkpoint, dtype, ModelLimits{});
      EXPECT_EQ(size_t(weights_of(model_modules(config, dtype))), expected.weight_bytes) << dir;
    }
  }
  for (size_t i = 2; i < dirs.size(); ++i) std::filesystem::remove_all(dirs[i]);
}

// The same with --quantize fp8, whose projections load as FP8 weights with their scales.
TEST(MemoryPlanner, Fp8WeightBytesEqualTheModelsPlan) {
  for (const char* name : {"tiny-tied", "tiny-untied"}) {
    const std::string dir = std::string(QWENVL_FIXTURES_DIR) + "/models/" + name;
    ModelConfig config = load_model_config(dir);
    const Checkpoint checkpoint = Checkpoint::open(dir, config);
    const int64_t layer_bf16 = model_modules(config, DType::BF16)[2].weight_bytes;
    apply_quantize_option(config.quantization, "fp8");
    for (DType dtype : {DType::BF16, DType::F16}) {
      const MemoryPlan expected = Qwen25VL::plan(config, checkpoint, dtype, ModelLimits{});
      EXPECT_EQ(size_t(weights_of(model_modules(config, dtype))), expected.weight_bytes) << name;
    }
    EXPECT_LT(model_modules(config, DType::BF16)[2].weight_bytes, layer_bf16) << name;
  }
}

// The same for AWQ checkpoints, whose projections load as packed 4-bit weights: the plan counts
// them at their packed size, far below the 16-bit one.
TEST(MemoryPlanner, AwqWeightBytesEqualTheModelsPlan) {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("qwenvl-plan-awq-" + std::to_string(std::random_device{}()));
  for (const auto& [name, group] : {std::pair{"tiny-tied", 32}, std::pair{"tiny-untied", 16}}) {
    const std::string src = std::string(QWENVL_FIXTURES_DIR) + "/models/" + name;
    write_awq_checkpoint(src, group, {dir, ""});
    const ModelConfig config = load_model_config(dir);
    const Checkpoint checkpoint = Checkpoint::open(dir, config);
    const MemoryPlan expected = Qwen25VL::plan(config, checkpoint, DType::BF16, ModelLimits{});
    EXPECT_EQ(size_t(weights_of(model_modules(config, DType::BF16))), expected.weight_bytes)
        << name;
    const int64_t layer_awq = model_modules(config, DType::BF16)[2].weight_bytes;
    const int64_t layer_bf16 = model_modules(load_model_config(src), DType::BF16)[2].weight_bytes;
    EXPECT_LT(layer_awq, layer_bf16) << name;
    std::filesystem::remove_all(dir);
  }
}

TEST(MemoryPlanner, ModulesAreInForwardOrderWithTransformersNames) {
  const auto untied = model_modules(official("7B"), DType::BF16);
  ASSERT_EQ(untied.size(), 2u + 28 + 2);
  EXPECT_EQ(untied[0].name, "visual");
  EXPECT_EQ(untied[1].name, "model.embed_tokens");
  EXPECT_EQ(untied[2].name, "model.layers.0");
  EXPECT_EQ(untied[29].name, "model.layers.27");
  EXPECT_EQ(untied[30].name, "model.norm");
  EXPECT_EQ(untied[31].name, "lm_head");
  const auto tied = model_modules(official("3B"), DType::BF16);
  EXPECT_EQ(tied.back().name, "model.norm");
  EXPECT_TRUE(tied[1].read_per_token);     // the tied embedding is lm_head too
  EXPECT_FALSE(untied[1].read_per_token);  // a decode step reads one row
}

TEST(MemoryPlanner, SevenBFitsOn24GiB) {
  const PlacementPlan plan = plan_placement(input("7B", "cuda:0=24GiB"));
  EXPECT_EQ(count(plan, Placement::Gpu), int(plan.modules.size()));
  expect_within_budgets(plan);
  EXPECT_GE(plan.kv_capacity_tokens, plan.context_tokens);
  EXPECT_GE(plan.largest_image_tokens, plan.image_tokens);
  EXPECT_GT(plan.decode.tokens_per_s, 0);
  EXPECT_EQ(plan.decode.streamed_bytes, 0);
}

TEST(MemoryPlanner, ThreeBOn4GiBStreamsTheVisionTowerThenItsLastLayers) {
  PlannerInput in = input("3B", "cuda:0=4GiB");
  in.max_context = 8192;
  const PlacementPlan plan = plan_placement(in);
  expect_within_budgets(plan);
  EXPECT_GT(count(plan, Placement::Gpu), 2);
  EXPECT_GT(count(plan, Placement::Stream), 1);
  EXPECT_EQ(count(plan, Placement::Cpu), 0);
  // The vision tower streams first (it runs once per image), then the layers from the last; the
  // embeddings and the final norm stay resident.
  ASSERT_EQ(plan.modules.front().name, "visual");
  EXPECT_EQ(plan.modules.front().placement, Placement::Stream);
  bool streaming = false;
  for (size_t m = 1; m < plan.modules.size(); ++m) {
    const PlacedModule& p = plan.modules[m];
    EXPECT_EQ(p.gpu, 0) << p.name;
    if (p.name.rfind("model.layers.", 0) != 0) {
      EXPECT_EQ(p.placement, Placement::Gpu) << p.name;
      continue;
    }
    if (p.placement == Placement::Stream) streaming = true;
    EXPECT_EQ(p.placement, streaming ? Placement::Stream : Placement::Gpu) << p.name;
  }
  const DeviceUse& gpu = plan.devices.front();
  // Two buffers of one decoder layer (the largest streamed group), not of the vision tower.
  const std::vector<ModelModule> modules = model_modules(in.config, in.dtype);
  EXPECT_EQ(gpu.streaming, 2 * modules[2].stream_group_bytes);
  EXPECT_LT(modules[0].stream_group_bytes, modules[2].stream_group_bytes);
  EXPECT_GT(plan.devices.back().streaming, 0);  // the pinned host copies
  EXPECT_GT(plan.decode.streamed_bytes, 0);
  // auto streams, for now.
  in.offload = Offload::Stream;
  const PlacementPlan streamed = plan_placement(in);
  for (size_t m = 0; m < plan.modules.size(); ++m)
    EXPECT_EQ(streamed.modules[m].placement, plan.modules[m].placement);
  EXPECT_EQ(parse_offload("auto"), Offload::Auto);
  EXPECT_THROW(parse_offload("disk"), Error);
}

TEST(MemoryPlanner, AModelThatFitsStreamsNothingAndOneThatAlmostFitsOnlyTheVisionTower) {
  PlannerInput in = input("3B", "cuda:0=16GiB");
  in.max_context = 4096;
  EXPECT_EQ(count(plan_placement(in), Placement::Stream), 0);
  // Just under what holds everything: the vision tower alone gives the room back.
  const PlacementPlan ample = plan_placement(in);
  const int64_t everything = ample.devices.front().total();
  in.budgets = parse_memory_budgets(cat("cuda:0=", everything - (int64_t(1) << 20)));
  const PlacementPlan plan = plan_placement(in);
  expect_within_budgets(plan);
  EXPECT_EQ(count(plan, Placement::Stream), 1);
  EXPECT_EQ(plan.modules.front().placement, Placement::Stream);
  EXPECT_EQ(plan.decode.streamed_bytes, 0);  // decode reads no streamed byte
}

TEST(MemoryPlanner, StreamedModulesKeepTheirSmallPartsResident) {
  for (const char* size : {"3B", "7B", "32B", "72B"}) {
    for (const ModelModule& m : model_modules(official(size), DType::BF16)) {
      const bool streamable = m.name == "visual" || m.layer >= 0;
      EXPECT_EQ(m.streamable(), streamable) << size << " " << m.name;
      if (!streamable) continue;
      EXPECT_LT(m.streamed_bytes, m.weight_bytes) << m.name;  // input norm; patch embed, merger
      EXPECT_GT(m.streamed_bytes, m.weight_bytes * 9 / 10) << m.name;
      EXPECT_LE(m.stream_group_bytes, m.streamed_bytes) << m.name;
    }
  }
}

TEST(MemoryPlanner, SeventyTwoBOn80GiBStreams) {
  const PlacementPlan plan = plan_placement(input("72B", "cuda:0=80GiB"));
  expect_within_budgets(plan);
  EXPECT_GT(count(plan, Placement::Stream), 0);
  EXPECT_EQ(plan.modules.back().name, "lm_head");
  EXPECT_EQ(plan.modules.back().placement, Placement::Gpu);  // lm_head never streams
}

TEST(MemoryPlanner, SeventyTwoBSplitsOverTwoGpusInOrder) {
  const PlacementPlan plan = plan_placement(input("72B", "cuda:0=80GiB,cuda:1=80GiB", 2));
  expect_within_budgets(plan);
  EXPECT_EQ(count(plan, Placement::Stream), 0);
  int last_gpu = 0;
  for (const PlacedModule& m : plan.modules) {
    EXPECT_GE(m.gpu, last_gpu) << m.name;
    last_gpu = m.gpu;
  }
  EXPECT_EQ(plan.modules.front().gpu, 0);
  EXPECT_EQ(plan.modules.back().gpu, 1);
  ASSERT_GE(plan.devices.size(), 3u);
  EXPECT_GT(plan.devices[0].kv_cache, 0);
  EXPECT_GT(plan.devices[1].kv_cache, 0);
}

TEST(MemoryPlanner, CpuOffloadRunsTheRestOnTheCpu) {
  PlannerInput in = input("3B", "cuda:0=4GiB");
  in.max_context = 8192;
  in.offload = Offload::Cpu;
  const PlacementPlan plan = plan_placement(in);
  expect_within_budgets(plan);
  EXPECT_EQ(count(plan, Placement::Stream), 0);
  EXPECT_GT(count(plan, Placement::Cpu), 0);
  const DeviceUse& cpu = plan.devices.back();
  EXPECT_EQ(cpu.device.kind, DeviceKind::CPU);
  EXPECT_GT(cpu.weights, 0);
  EXPECT_GT(cpu.kv_cache, 0);
  EXPECT_GT(cpu.workspace, 0);
  EXPECT_GT(plan.decode.cpu_bytes, 0);
}

// Every official size under budgets from tight to ample, one GPU or two, either offload: every
// device within its budget, modules in forward order over the GPUs, the requested context and
// image held.
TEST(MemoryPlanner, EveryOfficialSizeStaysWithinItsBudgets) {
  for (const char* size : {"3B", "7B", "32B", "72B"}) {
    for (const char* budgets : {"cuda:0=16GiB", "cuda:0=24GiB", "cuda:0=80GiB",
                                "cuda:0=24GiB,cuda:1=24GiB", "cuda:0=80GiB,cuda:1=80GiB"}) {
      for (Offload offload : {Offload::Auto, Offload::Cpu}) {
        PlannerInput in = input(size, budgets, 2);
        in.offload = offload;
        in.max_context = 8192;
        const PlacementPlan plan = plan_placement(in);
        SCOPED_TRACE(std::string(size) + " " + budgets + " " + offload_name(offload));
        expect_within_budgets(plan);
        EXPECT_GE(plan.kv_capacity_tokens, in.max_context);
        EXPECT_GE(plan.largest_image_tokens, plan.image_tokens);
        int gpu = 0;
        for (const PlacedModule& m : plan.modules) {
          if (m.placement != Placement::Gpu) continue;
          EXPECT_GE(m.gpu, gpu) << m.name;
          gpu = m.gpu;
        }
      }
    }
  }
  const PlacementPlan resident = plan_placement(input("32B", "cuda:0=80GiB"));
  EXPECT_EQ(count(resident, Placement::Gpu), int(resident.modules.size()));
}

TEST(MemoryPlanner, CapacityGrowsWithTheBudget) {
  int64_t tokens = 0, image = 0;
  for (const char* budget : {"cuda:0=22GiB", "cuda:0=32GiB", "cuda:0=48GiB"}) {
    const PlacementPlan plan = plan_placement(input("7B", budget));
    EXPECT_GT(plan.kv_capacity_tokens, tokens) << budget;
    EXPECT_GE(plan.largest_image_tokens, image) << budget;
    tokens = plan.kv_capacity_tokens;
    image = plan.largest_image_tokens;
  }
  PlannerInput text_only = input("7B", "cuda:0=17GiB");
  text_only.max_pixels = 0;
  text_only.max_context = 4096;
  const int64_t small = plan_placement(text_only).largest_image_tokens;
  text_only.budgets = parse_memory_budgets("cuda:0=19GiB");
  EXPECT_GT(plan_placement(text_only).largest_image_tokens, small);
}

// The capacity reported is exact: a context of that many tokens keeps every module resident,
// one token more does not.
TEST(MemoryPlanner, KvCapacityIsTheLargestContextThatFits) {
  PlannerInput in = input("7B", "cuda:0=20GiB");
  in.max_pixels = 0;
  in.max_context = 4096;
  const int64_t capacity = plan_placement(in).kv_capacity_tokens;
  ASSERT_GT(capacity, in.max_context);
  in.max_context = capacity;
  const PlacementPlan fits = plan_placement(in);
  EXPECT_EQ(count(fits, Placement::Gpu), int(fits.modules.size()));
  EXPECT_EQ(fits.kv_capacity_tokens, capacity);
  in.max_context = capacity + 1;
  const PlacementPlan over = plan_placement(in);
  EXPECT_LT(count(over, Placement::Gpu), int(over.modules.size()));
}

// Likewise the largest image: its pixels keep every module resident, one token more does not.
TEST(MemoryPlanner, LargestImageIsTheLargestThatFits) {
  PlannerInput in = input("7B", "cuda:0=17GiB");
  in.max_context = 2048;
  in.max_pixels = 0;
  const PlacementPlan text_only = plan_placement(in);
  ASSERT_GT(text_only.largest_image_tokens, 0);
  ASSERT_LT(text_only.largest_image_tokens, 65536);
  in.max_pixels = text_only.largest_image_pixels;
  const PlacementPlan fits = plan_placement(in);
  EXPECT_EQ(fits.image_tokens, text_only.largest_image_tokens);
  EXPECT_EQ(count(fits, Placement::Gpu), int(fits.modules.size()));
  in.max_pixels = text_only.largest_image_pixels + 28 * 28;
  EXPECT_LT(count(plan_placement(in), Placement::Gpu), int(fits.modules.size()));
}

TEST(MemoryPlanner, AGpuThatIsNotHereIsPlannedAtItsBudget) {
  PlannerInput in = input("7B", "cuda:0=40GiB", 0);
  in.gpus = {{40 * kGiB, true}};
  const PlacementPlan plan = plan_placement(in);
  EXPECT_EQ(plan.devices.front().source, BudgetSource::Assumed);
  EXPECT_EQ(plan.devices.front().budget, 40 * kGiB);
  // A present GPU's budget above its free memory is capped by what is free.
  PlannerInput present = input("7B", "cuda:0=100GiB", 1, 30);
  EXPECT_EQ(plan_placement(present).devices.front().budget, 30 * kGiB);
  EXPECT_EQ(plan_placement(present).devices.front().source, BudgetSource::Free);
}

TEST(MemoryPlanner, ExplicitDeviceMap) {
  PlannerInput in = input("3B", "cuda:0=20GiB");
  for (const ModelModule& m : model_modules(in.config, in.dtype)) in.device_map[m.name] = "cuda:0";
  in.device_map["model.layers.35"] = "stream";
  in.device_map["model.norm"] = "cpu";
  PlannerInput streamed_norm = in;
  streamed_norm.device_map["model.norm"] = "stream";
  EXPECT_NE(error_of(streamed_norm).find("model.norm cannot stream"), std::string::npos);
  const PlacementPlan plan = plan_placement(in);
  expect_within_budgets(plan);
  EXPECT_EQ(plan.modules[2 + 35].placement, Placement::Stream);
  EXPECT_EQ(plan.modules[2 + 35].gpu, 0);
  EXPECT_EQ(plan.modules.back().placement, Placement::Cpu);

  PlannerInput unknown = in;
  unknown.device_map["model.layers.99"] = "cuda:0";
  EXPECT_NE(error_of(unknown).find("unknown module 'model.layers.99'"), std::string::npos);
  PlannerInput bad_device = in;
  bad_device.device_map["visual"] = "cuda:1";
  EXPECT_NE(error_of(bad_device).find("cuda:1"), std::string::npos);
  bad_device.device_map["visual"] = "tpu";
  EXPECT_NE(error_of(bad_device).find("unknown device 'tpu'"), std::string::npos);
  PlannerInput missing = in;
  missing.device_map.erase("visual");
  EXPECT_NE(error_of(missing).find("does not place module 'visual'"), std::string::npos);
  PlannerInput too_much = in;
  too_much.budgets = parse_memory_budgets("cuda:0=6GiB");
  EXPECT_NE(error_of(too_much).find("does not hold what --device-map puts there"),
            std::string::npos);
}

TEST(MemoryPlanner, AServersImageCacheCountsInTheHostsBudget) {
  PlannerInput in = input("3B", "cuda:0=40GiB,cpu=3GiB");
  in.host_cache_bytes = 2 * kGiB;
  const PlacementPlan plan = plan_placement(in);
  EXPECT_EQ(plan.devices.back().caches, 2 * kGiB);
  EXPECT_GE(plan.devices.back().total(), 2 * kGiB);
  expect_within_budgets(plan);
  in.host_cache_bytes = 4 * kGiB;
  EXPECT_NE(error_of(in).find("the host needs"), std::string::npos) << error_of(in);
}

TEST(MemoryPlanner, SaysWhatToChangeWhenNothingFits) {
  EXPECT_NE(error_of(input("7B", "cuda:0=100MiB")).find("does not hold the workspaces"),
            std::string::npos);
  PlannerInput large_image = input("7B", "cuda:0=600MiB");
  large_image.max_context = 4096;
  const std::string image = error_of(large_image);
  EXPECT_NE(image.find("an image of --max-pixels 12845056 needs 16,384 tokens"), std::string::npos)
      << image;
  EXPECT_NE(image.find("use --max-pixels "), std::string::npos) << image;
  PlannerInput long_context = input("7B", "cuda:0=8GiB");
  long_context.max_context = 1 << 20;
  long_context.max_pixels = 0;
  EXPECT_NE(error_of(long_context).find("does not hold the KV cache of 1,048,576 tokens"),
            std::string::npos)
      << error_of(long_context);
  EXPECT_NE(error_of(input("7B", "cuda:2=8GiB")).find("names cuda:2, but there is 1 GPU"),
            std::string::npos);
  PlannerInput small_host = input("72B", "cuda:0=80GiB,cpu=16GiB");
  EXPECT_NE(error_of(small_host).find("the host needs"), std::string::npos);
}

}  // namespace
}  // namespace qwenvl
