// `--quantize fp8` on the committed tiny fixtures: the decoder's projections load as FP8 weights
// (backend/packed_fp8.h). Against two references:
// - its twin, the same checkpoint with those projections replaced by their dequantized FP8
//   values (code · scale, f32): on the CPU (f32 compute) the two agree to fp32 rounding, since
//   the FP8 path computes exactly the dequantized model;
// - the original 16-bit model: FP8 moves the logits by its own rounding, a few percent
//   (reported), far less than a different model would.
// On the GPU machine, QWENVL_TEST_DEVICE=cuda:bf16 or cuda:fp16 runs them on CUDA (decode steps as
// graphs), within the 16-bit tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "backend/packed_fp8.h"
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
    path = fs::temp_directory_path() / ("qwenvl-fp8-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct ModelRun {
  std::vector<float> logits;  // the last prompt position's
  std::vector<int32_t> tokens;
};

int32_t argmax(const std::vector<float>& v) {
  return int32_t(std::max_element(v.begin(), v.end()) - v.begin());
}

struct TestDevice {
  std::string name = "cpu";
  DType dtype = DType::BF16;
  double tolerance = 1e-4;  // rel L2 of the FP8 model's logits against its twin's
};

TestDevice test_device() {
  const char* env = std::getenv("QWENVL_TEST_DEVICE");
  const std::string spec = env ? env : "cpu";
  if (spec == "cuda:bf16") return {"cuda", DType::BF16, 2e-2};
  if (spec == "cuda:fp16") return {"cuda", DType::F16, 1e-2};
  return {};
}

fs::path fixture(const char* name) { return fs::path(QWENVL_FIXTURES_DIR) / "models" / name; }

// A prompt with one image, then `steps` greedy tokens.
ModelRun run(const std::string& dir, bool fp8, int steps) {
  ModelConfig config = load_model_config(dir);
  config.quantization.fp8_at_load = fp8;
  const Checkpoint checkpoint = Checkpoint::open(dir, config);
  const TestDevice device = test_device();
  auto backend = make_backend(device.name, device.dtype, 2);
  ModelLimits limits;
  limits.max_context = 64;
  limits.max_image_patches = 16;
  limits.max_image_tokens = 4;
  Qwen25VL model(config, checkpoint, *backend, limits);
  model.warm_up();
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

// The fixture with every projection that --quantize fp8 converts replaced by its dequantized FP8
// values in f32; everything else as stored.
std::string write_dequantized_twin(const fs::path& src, const fs::path& dst) {
  ModelConfig config = load_model_config(src.string());
  const Checkpoint checkpoint = Checkpoint::open(src.string(), config);
  config.quantization.fp8_at_load = true;
  std::vector<std::pair<std::string, Tensor>> tensors;
  int converted = 0;
  for (const auto& [name, tensor] : checkpoint.tensors()) {
    const std::string module = name.substr(0, name.rfind('.'));
    if (name != module + ".weight" || !config.quantization.converts_to_fp8(module)) {
      tensors.emplace_back(name, tensor);
      continue;
    }
    const Tensor packed = quantize_fp8(tensor, name.c_str());
    const Fp8Layout layout = Fp8Layout::of(packed);
    Tensor values = Tensor::empty({layout.rows, layout.k}, DType::F32);
    for (int64_t r = 0; r < layout.rows; ++r)
      dequantize_fp8_columns(packed.data<uint8_t>() + r * layout.row_bytes(), layout, 0, layout.k,
                             values.data<float>() + r * layout.k);
    tensors.emplace_back(name, values);
    ++converted;
  }
  EXPECT_EQ(converted, 7 * config.text.num_hidden_layers);
  fs::create_directories(dst);
  for (const auto& entry : fs::directory_iterator(src))
    if (entry.is_regular_file() && entry.path().extension() != ".safetensors" &&
        entry.path().filename() != "model.safetensors.index.json")
      fs::copy_file(entry.path(), dst / entry.path().filename());
  write_safetensors((dst / "model.safetensors").string(), tensors);
  return dst.string();
}

void expect_fp8_matches_dequantized(const char* name) {
  SCOPED_TRACE(name);
  TempDir tmp;
  const std::string twin = write_dequantized_twin(fixture(name), tmp.path / "twin");
  const ModelRun fp8 = run(fixture(name).string(), true, 6), deq = run(twin, false, 6);
  EXPECT_LT(test::rel_l2(fp8.logits, deq.logits), test_device().tolerance);
  // Greedy tokens where fp32 decides them; 16-bit runs may part at near-ties.
  if (test_device().name == "cpu") {
    EXPECT_EQ(fp8.tokens, deq.tokens);
  }
  // Against the 16-bit model: FP8's 3 mantissa bits move the logits (rel L2 of a few percent on
  // these random weights), but far less than a different model would.
  const ModelRun original = run(fixture(name).string(), false, 0);
  const double moved = test::rel_l2(fp8.logits, original.logits);
  std::printf("[ fp8      ] %s: logits rel L2 vs the 16-bit model %.4f\n", name, moved);
  EXPECT_GT(moved, 1e-4);
  EXPECT_LT(moved, 0.08);
}

TEST(Fp8Model, TiedFixtureMatchesItsDequantizedWeights) {
  expect_fp8_matches_dequantized("tiny-tied");
}

TEST(Fp8Model, UntiedTransformers5FixtureMatchesItsDequantizedWeights) {
  expect_fp8_matches_dequantized("tiny-untied");
}

// The plan counts the projections as FP8 weights (about half their 16-bit bytes); nothing else
// changes.
TEST(Fp8Model, ThePlanCountsFp8Weights) {
  for (const char* name : {"tiny-tied", "tiny-untied"}) {
    ModelConfig config = load_model_config(fixture(name).string());
    const Checkpoint checkpoint = Checkpoint::open(fixture(name).string(), config);
    const MemoryPlan bf16 = Qwen25VL::plan(config, checkpoint, DType::BF16, ModelLimits{});
    config.quantization.fp8_at_load = true;
    const MemoryPlan fp8 = Qwen25VL::plan(config, checkpoint, DType::BF16, ModelLimits{});
    EXPECT_LT(fp8.weight_bytes, bf16.weight_bytes) << name;
    EXPECT_EQ(fp8.workspace_bytes, bf16.workspace_bytes) << name;
  }
}

}  // namespace
}  // namespace qwenvl
