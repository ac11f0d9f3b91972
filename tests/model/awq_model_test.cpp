// An AWQ checkpoint against its dequantized twin: write_awq_checkpoint quantizes the committed
// tiny fixtures (round to nearest per group, the official AWQ format and names) and writes the
// same model with the dequantized weights (q - z) * s as f32. On the CPU (f32 compute) the two
// must agree to fp32 rounding: the packed 4-bit path computes exactly the dequantized model.
// On the GPU machine, QWENVL_TEST_DEVICE=cuda:bf16 or cuda:fp16 runs both on CUDA (the twin's
// weights rounded to 16 bits at upload), within the 16-bit tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "checkpoint/awq.h"
#include "checkpoint/awq_checkpoint.h"
#include "checkpoint/safetensors_writer.h"
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
struct ModelRun {
  std::vector<float> logits;
  std::vector<int32_t> tokens;
};

int32_t argmax(const std::vector<float>& v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

struct TestDevice {
  std::string name = "cpu";
  DType dtype = DType::BF16;
  double tolerance = 1e-4;  // rel L2 of the AWQ model's logits against its twin's
};

TestDevice test_device() {
  const char* env = std::getenv("QWENVL_TEST_DEVICE");
  const std::string spec = env ? env : "cpu";
  if (spec == "cuda:bf16") return {"cuda", DType::BF16, 2e-2};
  if (spec == "cuda:fp16") return {"cuda", DType::F16, 1e-2};
  return {};
}

ModelRun run(const std::string& dir, int steps) {
  const ModelConfig config = load_model_config(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir, config);
  const TestDevice device = test_device();
  auto backend = make_backend(device.name, device.dtype, 2);
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
  ModelRun r;
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
  const ModelRun awq = run(paths.awq_dir, 6), deq = run(paths.dequantized_dir, 6);
  EXPECT_LT(test::rel_l2(awq.logits, deq.logits), test_device().tolerance);
  // Greedy tokens where fp32 decides them; 16-bit runs may part at near-ties.
  if (test_device().name == "cpu") {
    EXPECT_EQ(awq.tokens, deq.tokens);
  }
  // The weights did change: 4 bits move the logits far more than fp32 rounding does.
  const ModelRun original = run(std::string(QWENVL_FIXTURES_DIR) + "/models/" + fixture, 0);
  EXPECT_GT(test::rel_l2(awq.logits, original.logits), 1e-3);
}

TEST(AwqModel, TiedFixtureMatchesItsDequantizedWeights) {
  expect_awq_matches_dequantized("tiny-tied", 32);
}

TEST(AwqModel, UntiedTransformers5FixtureMatchesItsDequantizedWeights) {
  expect_awq_matches_dequantized("tiny-untied", 16);
}

// Values of `v` with `rows` outputs and `k` inputs, the new ones random (the padding AWQ
// checkpoints hold is zeros; anything there must be dropped at load).
Int4Values padded(const Int4Values& v, int64_t rows, int64_t k, std::mt19937& rng) {
  std::uniform_int_distribution<int> nibble(0, 15);
  Int4Values out{rows, k, v.group, {}, {}, {}};
  const int64_t groups = k / v.group, old_groups = v.k / v.group;
  for (int64_t o = 0; o < rows; ++o) {
    for (int64_t i = 0; i < k; ++i)
      out.q.push_back(o < v.rows && i < v.k ? v.q[size_t(o * v.k + i)] : uint8_t(nibble(rng)));
    for (int64_t g = 0; g < groups; ++g) {
      const bool kept = o < v.rows && g < old_groups;
      out.zeros.push_back(kept ? v.zeros[size_t(o * old_groups + g)] : uint8_t(nibble(rng)));
      out.scales.push_back(kept ? v.scales[size_t(o * old_groups + g)] : uint16_t(0x2e66));
    }
  }
  return out;
}

// An AWQ checkpoint whose MLP is stored wider than config.json says (as Qwen's 72B-AWQ pads
// 29,568 to 29,696) loads without the padding: the same logits as the unpadded one.
TEST(AwqModel, PaddedMlpWidthLoadsAsTheUnpaddedModel) {
  TempDir tmp;
  const std::string plain = (tmp.path / "awq").string(), wide = (tmp.path / "wide").string();
  write_awq_checkpoint(std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied", 32, {plain, ""});
  const ModelConfig config = load_model_config(plain);
  const Checkpoint checkpoint = Checkpoint::open(plain, config);
  const int64_t f = config.text.intermediate_size, stored = f + 64;
  std::mt19937 rng(std::random_device{}());
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, tensor] : checkpoint.tensors()) {
    const std::string module = name.substr(0, name.rfind('.'));
    const bool mlp =
        module.rfind("model.layers.", 0) == 0 && module.find(".mlp.") != std::string::npos;
    if (!mlp || name != module + ".qweight") {
      if (!mlp) tensors.emplace_back(name, tensor);
      continue;
    }
    const Int4Values v =
        unpack_awq({tensor, checkpoint.get(module + ".qzeros"), checkpoint.get(module + ".scales")},
                   32, module);
    const bool down = module.find("down_proj") != std::string::npos;
    const AwqTensors t = pack_awq(padded(v, down ? v.rows : stored, down ? stored : v.k, rng));
    tensors.emplace_back(module + ".qweight", t.qweight);
    tensors.emplace_back(module + ".qzeros", t.qzeros);
    tensors.emplace_back(module + ".scales", t.scales);
  }
  fs::create_directories(wide);
  for (const auto& entry : fs::directory_iterator(plain))
    if (entry.path().extension() != ".safetensors")
      fs::copy_file(entry.path(), fs::path(wide) / entry.path().filename());
  write_safetensors(wide + "/model.safetensors", tensors);

  const Checkpoint opened = Checkpoint::open(wide, load_model_config(wide));
  EXPECT_EQ(opened.stored_mlp_width(), stored);
  EXPECT_EQ(opened.mlp_width(), f);
  const ModelRun a = run(plain, 2), b = run(wide, 2);
  EXPECT_LT(test::rel_l2(b.logits, a.logits), test_device().name == "cpu" ? 1e-6 : 1e-3);
  EXPECT_EQ(a.tokens, b.tokens);
}

}  // namespace
}  // namespace qwenvl
