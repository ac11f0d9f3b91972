// What generate and serve do before loading (runtime/model_setup.h): the placement a plan gives
// (GPU, streamed and CPU modules as backend indices), the backends it needs, and the default cap
// on a request's images when their plan does not fit the budgets. Planned for the official 3B
// config on an assumed GPU: no GPU needed.
#include "runtime/model_setup.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/file_read.h"
#include "runtime/weight_placement_of.h"

namespace qwenvl {
namespace {

constexpr int64_t GiB = int64_t(1) << 30;

ModelConfig three_b() {
  const std::string path = std::string(QWENVL_FIXTURES_DIR) + "/configs/3B.json";
  return parse_model_config(read_text_file(path, kMaxJsonFileBytes, "config"), path);
}

// A request of a 2,048-token context with one image of `image_tokens` merged tokens.
ModelLimits request(int64_t image_tokens) {
  ModelLimits limits;
  limits.max_context = 2048;
  limits.max_image_tokens = image_tokens;
  limits.max_image_patches = image_tokens * 4;
  return limits;
}

PlacementOptions offload(const std::string& how) {
  PlacementOptions options;
  options.offload = how;
  return options;
}

TEST(ModelSetup, CpuOffloadPlacesTheLastLayersOnTheCpuBackend) {
  const ModelConfig config = three_b();
  const PlannedPlacement planned =
      plan_gpu_placement(config, DType::BF16, request(1024), {}, offload("cpu"), {4 * GiB});
  const WeightPlacement& p = planned.placement;
  ASSERT_EQ(p.backends(), 2);
  EXPECT_EQ(p.vision_backend, kGpuBackend);
  EXPECT_EQ(p.embed_backend, kGpuBackend);
  EXPECT_EQ(p.head_backend, kCpuBackend);  // the tied lm_head goes with model.norm, last
  EXPECT_EQ(p.backend_of_layer(config.text.num_hidden_layers - 1), kCpuBackend);
  EXPECT_FALSE(p.any());  // nothing streams
  // The layers on the CPU are the last ones, in one run.
  int first_cpu = config.text.num_hidden_layers;
  for (int l = config.text.num_hidden_layers; l-- > 0 && p.backend_of_layer(l) == kCpuBackend;)
    first_cpu = l;
  for (int l = 0; l < config.text.num_hidden_layers; ++l)
    EXPECT_EQ(p.backend_of_layer(l), l < first_cpu ? kGpuBackend : kCpuBackend) << l;
  EXPECT_GT(first_cpu, 0);
}

TEST(ModelSetup, StreamingKeepsEveryModuleOnTheGpuBackend) {
  const PlannedPlacement planned =
      plan_gpu_placement(three_b(), DType::BF16, request(1024), {}, offload("stream"), {4 * GiB});
  EXPECT_EQ(planned.placement.backends(), 1);
  EXPECT_TRUE(planned.placement.any());
}

TEST(ModelSetup, TheBudgetsCapImagesTheirPlanCannotHold) {
  const ModelConfig config = three_b();
  const int64_t max_pixels_image = 16384;  // merged tokens of a 12.8 MP image
  const int64_t budget = 1536 << 20;
  EXPECT_THROW(plan_gpu_placement(config, DType::BF16, request(max_pixels_image), {},
                                  offload("stream"), {budget}),
               Error);
  const int64_t cap = image_tokens_the_budgets_hold(config, DType::BF16, request(max_pixels_image),
                                                    {}, offload("stream"), {budget});
  EXPECT_GT(cap, 1024);
  EXPECT_LT(cap, max_pixels_image);
  EXPECT_NO_THROW(
      plan_gpu_placement(config, DType::BF16, request(cap), {}, offload("stream"), {budget}));
  // A budget that does not hold even the model without images leaves no cap.
  EXPECT_EQ(image_tokens_the_budgets_hold(config, DType::BF16, request(max_pixels_image), {},
                                          offload("stream"), {GiB}),
            0);
}

}  // namespace
}  // namespace qwenvl
