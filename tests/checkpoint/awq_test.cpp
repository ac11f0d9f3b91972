// AWQ's storage (checkpoint/awq.h) and its config (checkpoint/quantization.h): the packing
// round-trips, the nibble order is AutoAWQ's, round-to-nearest quantization stays within half a
// step, and every setting qwenvl cannot run is one clear Error.
#include "checkpoint/awq.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "checkpoint/awq_checkpoint.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"
#include "core/error.h"
#include "core/half.h"
#include "test_checkpoints.h"

namespace qwenvl {
namespace {

Int4Values random_values(int64_t n, int64_t k, int64_t group, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> nibble(0, 15);
  std::uniform_real_distribution<float> scale(0.001f, 0.1f);
  Int4Values v{n, k, group, {}, {}, {}};
  for (int64_t i = 0; i < n * k; ++i) v.q.push_back(uint8_t(nibble(rng)));
  for (int64_t i = 0; i < n * (k / group); ++i) {
    v.zeros.push_back(uint8_t(nibble(rng)));
    v.scales.push_back(float_to_fp16(scale(rng)));
  }
  return v;
}

TEST(Awq, PackAndUnpackRoundTrip) {
  const Int4Values v = random_values(24, 64, 16, std::random_device{}());
  const AwqTensors t = pack_awq(v);
  EXPECT_EQ(t.qweight.shape(), (Shape{64, 3}));
  EXPECT_EQ(t.qzeros.shape(), (Shape{4, 3}));
  EXPECT_EQ(t.scales.shape(), (Shape{4, 24}));
  const Int4Values back = unpack_awq(t, 16, "test");
  EXPECT_EQ(back.q, v.q);
  EXPECT_EQ(back.zeros, v.zeros);
  EXPECT_EQ(back.scales, v.scales);
}

// AutoAWQ's WQLinear_GEMM.from_linear: nibble i of int32 column j holds output 8j + order[i],
// order = [0, 2, 4, 6, 1, 3, 5, 7].
TEST(Awq, NibbleOrderIsAutoAwqs) {
  Int4Values v{8,
               2,
               2,
               std::vector<uint8_t>(16, 0),
               {0, 0, 0, 0, 0, 0, 0, 0},
               std::vector<uint16_t>(8, float_to_fp16(1.0f))};
  for (int o = 0; o < 8; ++o) v.q[size_t(o * 2)] = uint8_t(o + 1);  // input 0 of output o
  const AwqTensors t = pack_awq(v);
  EXPECT_EQ(uint32_t(t.qweight.data<int32_t>()[0]), 0x86427531u);
  EXPECT_EQ(t.qweight.data<int32_t>()[1], 0);
}

TEST(Awq, RoundToNearestStaysWithinHalfAStep) {
  for (unsigned seed = 0; seed < 32; ++seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    Tensor w = Tensor::empty({16, 256}, DType::F32);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = normal(rng);
    const Int4Values v = quantize_round_to_nearest(w, 128);
    const Tensor d = dequantize(v);
    for (int64_t o = 0; o < 16; ++o)
      for (int64_t i = 0; i < 256; ++i) {
        const float s = fp16_to_float(v.scales[size_t(o * 2 + i / 128)]);
        // Half a step, plus what storing the scale as fp16 (relative error up to 2^-11) takes
        // off the 15 steps that must span the group, which clamping shows at a group's edge.
        EXPECT_LE(std::abs(d.data<float>()[o * 256 + i] - w.data<float>()[o * 256 + i]),
                  0.5f * s + 15.0f * s / 2048.0f + 1e-6f)
            << "seed " << seed << ", " << o << ", " << i;
      }
  }
}

TEST(Awq, UnpackChecksShapesAndDtypes) {
  const AwqTensors t = pack_awq(random_values(16, 32, 16, 1));
  AwqTensors wrong = t;
  wrong.scales = Tensor::empty({2, 16}, DType::BF16);
  EXPECT_THROW(unpack_awq(wrong, 16, "x"), Error);
  EXPECT_THROW(unpack_awq(t, 32, "x"), Error);  // qzeros then has the wrong number of groups
}

std::string config_7b() {
  std::ifstream in(std::string(QWENVL_FIXTURES_DIR) + "/configs/7B.json", std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The official Qwen2.5-VL-7B-Instruct-AWQ quantization_config.
nlohmann::json awq_7b() {
  nlohmann::json j = nlohmann::json::parse(config_7b());
  j["quantization_config"] = {{"bits", 4},
                              {"group_size", 128},
                              {"modules_to_not_convert", {"visual"}},
                              {"quant_method", "awq"},
                              {"version", "gemm"},
                              {"zero_point", true}};
  return j;
}

TEST(AwqConfig, OfficialConfigParses) {
  const ModelConfig c = parse_model_config(awq_7b().dump(), "config.json");
  EXPECT_TRUE(c.quantization.awq());
  EXPECT_EQ(c.quantization.bits, 4);
  EXPECT_EQ(c.quantization.group_size, 128);
  EXPECT_TRUE(c.quantization.quantizes("model.layers.3.mlp.down_proj"));
  EXPECT_FALSE(c.quantization.quantizes("visual.blocks.0.attn.qkv"));
  EXPECT_FALSE(c.quantization.quantizes("lm_head"));
  EXPECT_FALSE(parse_model_config(config_7b(), "config.json").quantization.awq());
}

TEST(AwqConfig, ModulesToNotConvertKeepTheirWeights) {
  nlohmann::json j = awq_7b();
  j["quantization_config"]["modules_to_not_convert"] = {"visual", "layers.0.mlp"};
  const ModelConfig c = parse_model_config(j.dump(), "config.json");
  EXPECT_FALSE(c.quantization.quantizes("model.layers.0.mlp.gate_proj"));
  EXPECT_TRUE(c.quantization.quantizes("model.layers.0.self_attn.q_proj"));
  std::vector<ExpectedTensor> expected = expected_tensors(c);
  auto has = [&](const std::string& name) {
    for (const auto& e : expected)
      if (e.name == name) return true;
    return false;
  };
  EXPECT_TRUE(has("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_TRUE(has("model.layers.0.self_attn.q_proj.qweight"));
  EXPECT_TRUE(has("model.layers.1.mlp.down_proj.scales"));
  EXPECT_TRUE(has("visual.blocks.0.attn.qkv.weight"));
}

void expect_refused(const std::function<void(nlohmann::json&)>& edit, const std::string& needle) {
  nlohmann::json j = awq_7b();
  edit(j["quantization_config"]);
  try {
    parse_model_config(j.dump(), "config.json");
    ADD_FAILURE() << "accepted, expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(AwqConfig, UnsupportedSettingsAreOneClearError) {
  expect_refused([](auto& q) { q["quant_method"] = "gptq"; }, "quantization method 'gptq'");
  expect_refused([](auto& q) { q["quant_method"] = "fp8"; }, "quantization method 'fp8'");
  expect_refused([](auto& q) { q["bits"] = 8; }, "8-bit");
  expect_refused([](auto& q) { q["version"] = "gemv"; }, "version 'gemv'");
  expect_refused([](auto& q) { q["version"] = "exllama"; }, "version 'exllama'");
  expect_refused([](auto& q) { q["zero_point"] = false; }, "without zero points");
  expect_refused([](auto& q) { q["group_size"] = -1; }, "group_size is -1");
  expect_refused([](auto& q) { q.erase("quant_method"); }, "'quantization_config.quant_method'");
  expect_refused([](auto& q) { q["modules_to_not_convert"] = "visual"; }, "list of module names");
}

TEST(AwqConfig, GroupsThatDoNotDivideAProjectionAreAnError) {
  nlohmann::json j = awq_7b();
  j["quantization_config"]["group_size"] = 1024;  // 18944 = 18.5 · 1024
  const ModelConfig c = parse_model_config(j.dump(), "config.json");
  EXPECT_THROW(expected_tensors(c), Error);
}

// write_awq_checkpoint on the committed tiny fixture: the official names, dtypes and shapes, the
// vision tower, embeddings and biases untouched; a config that disagrees with the tensors is
// refused by name.
TEST(AwqCheckpoint, WritesTheOfficialFormatThatOpenValidates) {
  test::TempDir tmp;
  const std::string src = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";
  write_awq_checkpoint(src, 32, {tmp.file("awq"), ""});
  const ModelConfig config = load_model_config(tmp.file("awq"));
  ASSERT_TRUE(config.quantization.awq());
  EXPECT_EQ(config.quantization.modules_to_not_convert, std::vector<std::string>{"visual"});
  const Checkpoint ckpt = Checkpoint::open(tmp.file("awq"), config);
  const Tensor& qweight = ckpt.get("model.layers.1.mlp.down_proj.qweight");  // K 128, N 32
  EXPECT_EQ(qweight.dtype(), DType::I32);
  EXPECT_EQ(qweight.shape(), (Shape{128, 4}));
  EXPECT_EQ(ckpt.get("model.layers.1.mlp.down_proj.qzeros").shape(), (Shape{4, 4}));
  EXPECT_EQ(ckpt.get("model.layers.1.mlp.down_proj.scales").dtype(), DType::F16);
  EXPECT_EQ(ckpt.get("model.layers.1.mlp.down_proj.scales").shape(), (Shape{4, 32}));
  EXPECT_FALSE(ckpt.has("model.layers.1.mlp.down_proj.weight"));
  EXPECT_TRUE(ckpt.has("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_TRUE(ckpt.has("visual.blocks.0.attn.qkv.weight"));
  EXPECT_TRUE(ckpt.has("model.embed_tokens.weight"));

  nlohmann::json j = nlohmann::json::parse(std::ifstream(tmp.file("awq") + "/config.json"));
  j["quantization_config"]["group_size"] = 16;
  test::write_file(tmp.file("awq") + "/config.json", j.dump());
  try {
    Checkpoint::open(tmp.file("awq"), load_model_config(tmp.file("awq")));
    ADD_FAILURE() << "a group size the tensors do not have was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("qzeros"), std::string::npos) << e.what();
  }
  // The 16-bit checkpoint under an AWQ config: the missing qweight is named.
  j = nlohmann::json::parse(std::ifstream(src + "/config.json"));
  j["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 32}};
  std::filesystem::create_directories(tmp.file("mixed"));
  test::write_file(tmp.file("mixed") + "/config.json", j.dump());
  std::filesystem::copy_file(src + "/model.safetensors", tmp.file("mixed") + "/model.safetensors");
  EXPECT_THROW(Checkpoint::open(tmp.file("mixed"), load_model_config(tmp.file("mixed"))), Error);
}

}  // namespace
}  // namespace qwenvl
