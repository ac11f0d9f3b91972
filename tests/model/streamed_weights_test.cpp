// Streamed weights (model/weight_placement.h) compute what resident weights compute: the same
// logits, bit for bit, through an image prompt's vision tower (3 blocks), a chunked prefill and
// decode steps (5 layers), whichever layers stream and however many slots they take. On the CPU by
// default; on the GPU machine QWENVL_TEST_DEVICE=cuda:bf16 runs the same cases on CUDA, where the
// copies overlap the compute on a copy stream and decode steps replay as graphs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "model/qwen2_5_vl.h"
#include "model_test_util.h"
#include "synthetic_checkpoint.h"

namespace qwenvl {
namespace {

using test::host_copy;

test::SynthModel& synth() {
  static test::SynthModel s = test::open_synthetic_model("streamed", false, 4321, 5, 3, true);
  return s;
}

std::unique_ptr<Backend> backend_under_test() {
  const char* env = std::getenv("QWENVL_TEST_DEVICE");
  const std::string spec = env ? env : "cpu";
  if (spec == "cuda:bf16") return make_backend("cuda", DType::BF16, 0);
  if (spec == "cuda:fp16") return make_backend("cuda", DType::F16, 0);
  return make_backend("cpu", DType::BF16, 2);
}

// The logits after an image prompt (prefilled in chunks of 5) and after each of 4 decode steps,
// one after the other; fp8: the decoder's projections as FP8 weights (--quantize fp8).
std::vector<std::vector<float>> run(const WeightPlacement& placement, bool fp8 = false) {
  auto backend = backend_under_test();
  ModelConfig config = synth().config;
  config.quantization.fp8_at_load = fp8;
  const test::ImagePrompt prompt = test::synth_image_prompt();
  const std::vector<ImageInput>& images = prompt.images;
  const std::vector<int32_t>& ids = prompt.ids;
  const ModelLimits& limits = prompt.limits;
  Qwen25VL model(config, synth().checkpoint, *backend, limits, placement);
  model.warm_up();
  RopeIndexInputs rope;
  rope.image_grids.push_back(images[0].grid);
  rope.tokens = {config.image_token_id, config.video_token_id};
  const size_t mark = backend->workspace_mark();
  const Tensor embeds = model.encode_images(images);
  model.prefill(ids, rope_index(ids, rope), &embeds);
  backend->workspace_release(mark);
  std::vector<std::vector<float>> logits{host_copy(*backend, model.logits())};
  for (int32_t token : {11, 12, 13, 14}) {
    model.decode_step(token);
    logits.push_back(host_copy(*backend, model.logits()));
  }
  return logits;
}

const std::vector<std::vector<float>>& resident() {
  static const std::vector<std::vector<float>> logits = run(WeightPlacement{});
  return logits;
}

void expect_resident_logits(const WeightPlacement& placement) {
  const auto streamed = run(placement);
  ASSERT_EQ(streamed.size(), resident().size());
  for (size_t step = 0; step < streamed.size(); ++step)
    EXPECT_EQ(streamed[step], resident()[step]) << "step " << step;
}

TEST(StreamedWeights, EverythingStreamedEqualsResident) {
  WeightPlacement all;
  all.stream_vision_blocks = true;
  all.stream_layers.assign(size_t(synth().config.text.num_hidden_layers), true);
  expect_resident_logits(all);
}

TEST(StreamedWeights, SomeLayersStreamedEqualsResident) {
  WeightPlacement some;  // layers 1, 3 and 4 of 5: an odd count, between resident ones
  some.stream_layers = {false, true, false, true, true};
  expect_resident_logits(some);
}

TEST(StreamedWeights, ThreeSlotsEqualResident) {
  WeightPlacement three;
  three.stream_vision_blocks = true;
  three.stream_layers.assign(size_t(synth().config.text.num_hidden_layers), true);
  three.slots = 3;
  expect_resident_logits(three);
}

// Streamed FP8 layers: the packed rows and their scales move as any weight's bytes do.
TEST(StreamedWeights, Fp8LayersStreamedEqualResident) {
  WeightPlacement all;
  all.stream_layers.assign(size_t(synth().config.text.num_hidden_layers), true);
  const auto resident_fp8 = run(WeightPlacement{}, true), streamed_fp8 = run(all, true);
  ASSERT_EQ(streamed_fp8.size(), resident_fp8.size());
  for (size_t step = 0; step < streamed_fp8.size(); ++step)
    EXPECT_EQ(streamed_fp8[step], resident_fp8[step]) << "step " << step;
  EXPECT_NE(resident_fp8.front(), resident().front());  // the weights did change
}

TEST(StreamedWeights, ThePlanCountsTheStreamedGroups) {
  const ModelConfig& config = synth().config;
  WeightPlacement all;
  all.stream_vision_blocks = true;
  all.stream_layers.assign(size_t(config.text.num_hidden_layers), true);
  for (DType dtype : {DType::BF16, DType::F32}) {
    const MemoryPlan resident_plan = Qwen25VL::plan(config, synth().checkpoint, dtype, {});
    const MemoryPlan streamed_plan = Qwen25VL::plan(config, synth().checkpoint, dtype, {}, all);
    EXPECT_EQ(resident_plan.streamed_host_bytes, 0u);
    EXPECT_EQ(streamed_plan.stream_slots, 2);
    EXPECT_GT(streamed_plan.stream_slot_bytes, 0u);
    EXPECT_LT(streamed_plan.weight_bytes, resident_plan.weight_bytes);
    if (dtype == DType::BF16) {  // the f32 (CPU) backend keeps resident weights where they lie
      EXPECT_EQ(streamed_plan.weight_bytes + streamed_plan.streamed_host_bytes,
                resident_plan.weight_bytes);
    }
  }
}

}  // namespace
}  // namespace qwenvl
