// The model against transformers' fp32 reference on the tiny checkpoints (tests/fixtures/models,
// written by tools/make_reference.py): M-RoPE positions, vision tower output, last-position logits
// and greedy tokens, on the CPU backend (fp32 activations).
// On the GPU machine the same cases run on CUDA: QWENVL_TEST_DEVICE=cuda:bf16 or cuda:fp16, with
// QWENVL_TEST_FIXTURES pointing at fixtures regenerated there (tools/device/gpu_session.sh).
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/npy.h"
#include "common/reference_logits.h"
#include "model/qwen2_5_vl.h"
#include "runtime/generator.h"
#include "text/tokenizer.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;

fs::path fixtures_dir() {
  const char* env = std::getenv("QWENVL_TEST_FIXTURES");
  return env && *env ? fs::path(env) : fs::path(QWENVL_FIXTURES_DIR);
}

// The backend under test and the bounds it is held to. fp32 against the fp32 reference: 1e-4
// relative L2 and identical greedy tokens wherever the reference's top-2 margin exceeds 1e-3.
// Half precision: 2e-2 in bf16, 1e-2 in fp16; greedy tokens only where the margin
// is far above the rounding noise of 16-bit activations.
struct DeviceUnderTest {
  std::string device = "cpu";
  DType dtype = DType::BF16;
  double logits_tolerance = 1e-4, vision_tolerance = 1e-4, tie_margin = 1e-3;
};

DeviceUnderTest device_under_test() {
  DeviceUnderTest d;
  const char* env = std::getenv("QWENVL_TEST_DEVICE");
  const std::string spec = env ? env : "cpu";
  if (spec == "cuda:bf16") {
    d = {"cuda", DType::BF16, 2e-2, 2e-2, 0.5};
  } else if (spec == "cuda:fp16") {
    d = {"cuda", DType::F16, 1e-2, 1e-2, 0.25};
  }
  return d;
}

double rel_l2(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

std::vector<float> to_host(Backend& backend, const Tensor& t) {
  Tensor host = Tensor::empty(t.shape(), DType::F32);
  backend.copy_to_host(t, host);
  backend.synchronize();
  return {host.data<float>(), host.data<float>() + host.numel()};
}

struct Case {
  std::string model;
  nlohmann::json entry;
};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const char* model : {"tiny-tied", "tiny-untied"}) {
    fs::path file = fixtures_dir() / "models" / model / "reference" / "cases.json";
    if (!fs::exists(file)) continue;
    for (const auto& entry : nlohmann::json::parse(std::ifstream(file)))
      cases.push_back({model, entry});
  }
  return cases;
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.model << "/" << c.entry["name"].get<std::string>();
}

class ReferenceFixture : public testing::TestWithParam<Case> {};

TEST_P(ReferenceFixture, MatchesTransformers) {
  const Case& c = GetParam();
  const fs::path model_dir = fixtures_dir() / "models" / c.model;
  const DeviceUnderTest dut = device_under_test();
  const fs::path ref = model_dir / "reference";
  const nlohmann::json& e = c.entry;
  const ModelConfig config = load_model_config(model_dir.string());
  const Checkpoint checkpoint = Checkpoint::open(model_dir.string(), config);
  const std::vector<int32_t> ids = e["input_ids"].get<std::vector<int32_t>>();

  // Images through our preprocessing, grids as the processor found them.
  PreprocessConfig pre = load_preprocess_config(model_dir.string());
  pre.min_pixels = e["min_pixels"];
  pre.max_pixels = e["max_pixels"];
  std::vector<ImageInput> images;
  ModelLimits limits;
  const auto files = e["images"].get<std::vector<std::string>>();
  for (size_t i = 0; i < files.size(); ++i) {
    ImagePatches p = preprocess_image(load_image((ref / files[i]).string()), pre);
    const auto grid = e["image_grid_thw"][i].get<std::vector<int64_t>>();
    ASSERT_EQ((std::vector<int64_t>{p.grid_t, p.grid_h, p.grid_w}), grid) << files[i];
    images.push_back({p.pixel_values, {p.grid_t, p.grid_h, p.grid_w}});
    limits.max_image_patches = std::max(limits.max_image_patches, p.tokens());
    limits.max_image_tokens += p.tokens() / 4;
  }

  // Positions.
  RopeIndexInputs rope_inputs;
  for (const auto& image : images) rope_inputs.image_grids.push_back(image.grid);
  rope_inputs.tokens = {config.image_token_id, config.video_token_id};
  const MropePositions positions = rope_index(ids, rope_inputs);
  const test::Npy pos_npy =
      test::read_npy((ref / e["position_ids_npy"].get<std::string>()).string());
  ASSERT_EQ(pos_npy.shape, (std::vector<int64_t>{3, int64_t(ids.size())}));
  EXPECT_EQ(positions.rows, pos_npy.as_int64());
  EXPECT_EQ(positions.rope_delta, e["rope_deltas"].get<int64_t>());

  // Vision tower, then the prompt's last logits.
  auto backend = make_backend(dut.device, dut.dtype, 0);
  if (dut.device == "cpu") {
    ASSERT_EQ(backend->compute_dtype(), DType::F32);
  }
  const int64_t steps = int64_t(e["greedy_ids"].size());
  limits.max_context = int64_t(ids.size()) + steps;
  limits.prefill_chunk = 64;  // several chunks for the longer prompts
  Qwen25VL model(config, checkpoint, *backend, limits);
  const size_t mark = backend->workspace_mark();
  Tensor embeds;
  if (!images.empty()) {
    embeds = model.encode_images(images);
    const test::Npy vision = test::read_npy((ref / e["vision_npy"].get<std::string>()).string());
    ASSERT_EQ(vision.shape, (std::vector<int64_t>{embeds.dim(0), embeds.dim(1)}));
    const double err = rel_l2(to_host(*backend, embeds), vision.as_double());
    EXPECT_LT(err, dut.vision_tolerance);
    std::printf("  %s/%s vision rel L2 %.2e\n", c.model.c_str(),
                e["name"].get<std::string>().c_str(), err);
  }
  model.prefill(ids, positions, images.empty() ? nullptr : &embeds);
  backend->workspace_release(mark);
  const std::vector<double> want_logits = test::reference_logits(model_dir, e);
  const double logits_err = rel_l2(to_host(*backend, model.logits()), want_logits);
  EXPECT_LT(logits_err, dut.logits_tolerance);
  std::printf("  %s/%s logits rel L2 %.2e\n", c.model.c_str(), e["name"].get<std::string>().c_str(),
              logits_err);

  // Greedy generation through the runtime (KV cache, decode positions with rope_delta).
  const Tokenizer tokenizer = Tokenizer::load((model_dir / "tokenizer.json").string());
  Generator generator(model, tokenizer);
  GenerationRequest request;
  request.prompt_ids = ids;
  request.images = images;
  request.max_new_tokens = steps;
  request.sampling.temperature = 0.0f;
  request.ignore_eos = true;
  const GenerationResult result = generator.generate(request, nullptr);
  const auto expected = e["greedy_ids"].get<std::vector<int32_t>>();
  const auto margins = e["greedy_top2_margins"].get<std::vector<double>>();
  ASSERT_EQ(result.tokens.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    if (margins[i] <= dut.tie_margin) break;  // a near tie: later tokens may legitimately differ
    EXPECT_EQ(result.tokens[i], expected[i]) << "greedy step " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, ReferenceFixture, testing::ValuesIn(all_cases()),
                         [](const testing::TestParamInfo<Case>& info) {
                           std::string name =
                               info.param.model + "_" + info.param.entry["name"].get<std::string>();
                           for (char& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

}  // namespace
}  // namespace qwenvl
