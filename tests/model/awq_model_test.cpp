// An AWQ checkpoint against its dequantized twin: write_awq_checkpoint quantizes the committed
// tiny fixtures (round to nearest per group, the official AWQ format and names) and writes the
// same model with the dequantized weights (q - z) * s as f32. On the CPU (f32 compute) the two
// must agree to fp32 rounding: the packed 4-bit path computes exactly the dequantized model.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "checkpoint/awq_checkpoint.h"
#include "model/qwen2_5_vl.h"
#include "model_test_util.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("qwenvl-awq-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The last position's logits after a prompt with one image, then `steps` greedy tokens.
struct Run {
  std::vector<float> logits;
  std::vector<int32_t> tokens;
};

int32_t argmax(const std::vector<float>& v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

Run run(const std::string& dir, int steps) {
  const ModelConfig config = load_model_config(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir, config);
  auto backend = make_backend("cpu", DType::BF16, 2);
  ModelLimits limits;
  limits.max_context = 64;
  limits.max_image_patches = 16;
  limits.max_image_tokens = 4;
  Qwen25VL model(config, checkpoint, *backend, limits);
  const std::vector<ImageInput> images{test::random_image(4, 4, 7)};
  std::vector<int32_t> ids{151644, 872, 198, config.vision_start_token_id};
  for (int i = 0; i < 4; ++i) ids.push_back(config.image_token_id);
  for (int32_t id : {config.vision_end_token_id, 3838, 374, 419, 30, 151645, 198})
    ids.push_back(id);
  RopeIndexInputs in;
  in.image_grids.push_back(images[0].grid);
  in.tokens = {config.image_token_id, config.video_token_id};
  const size_t mark = backend->workspace_mark();
  Tensor embeds = model.encode_images(images);
  model.prefill(ids, rope_index(ids, in), &embeds);
  backend->workspace_release(mark);
  Run r;
  r.logits = test::host_copy(*backend, model.logits());
  std::vector<float> step = r.logits;
  for (int i = 0; i < steps; ++i) {
    r.tokens.push_back(argmax(step));
    model.decode_step(r.tokens.back());
    step = test::host_copy(*backend, model.logits());
  }
  return r;
}

void expect_awq_matches_dequantized(const char* fixture, int64_t group) {
  SCOPED_TRACE(fixture);
  TempDir tmp;
  const AwqCheckpointPaths paths{(tmp.path / "awq").string(), (tmp.path / "deq").string()};
  write_awq_checkpoint(std::string(QWENVL_FIXTURES_DIR) + "/models/" + fixture, group, paths);
  ASSERT_TRUE(load_model_config(paths.awq_dir).quantization.awq());
  const Run awq = run(paths.awq_dir, 6), deq = run(paths.dequantized_dir, 6);
  EXPECT_LT(test::rel_l2(awq.logits, deq.logits), 1e-4);
  EXPECT_EQ(awq.tokens, deq.tokens);
  // The weights did change: 4 bits move the logits far more than fp32 rounding does.
  const Run original = run(std::string(QWENVL_FIXTURES_DIR) + "/models/" + fixture, 0);
  EXPECT_GT(test::rel_l2(awq.logits, original.logits), 1e-3);
}

TEST(AwqModel, TiedFixtureMatchesItsDequantizedWeights) {
  expect_awq_matches_dequantized("tiny-tied", 32);
}

TEST(AwqModel, UntiedTransformers5FixtureMatchesItsDequantizedWeights) {
  expect_awq_matches_dequantized("tiny-untied", 16);
}

}  // namespace
}  // namespace qwenvl
