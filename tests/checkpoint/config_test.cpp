#include "checkpoint/config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "checkpoint/model_size.h"
#include "core/error.h"
#include "test_checkpoints.h"

namespace qwenvl {
namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(QWENVL_FIXTURES_DIR) + "/configs/" + name, std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ModelConfig load_fixture(const std::string& name) {
  return parse_model_config(fixture(name), name);
}

// The vision tower is the same in every size: only its output width follows the text model.
void expect_standard_vision(const ModelConfig& c) {
  EXPECT_EQ(c.vision.depth, 32);
  EXPECT_EQ(c.vision.hidden_size, 1280);
  EXPECT_EQ(c.vision.intermediate_size, 3420);
  EXPECT_EQ(c.vision.num_heads, 16);
  EXPECT_EQ(c.vision.in_channels, 3);
  EXPECT_EQ(c.vision.patch_size, 14);
  EXPECT_EQ(c.vision.spatial_merge_size, 2);
  EXPECT_EQ(c.vision.temporal_patch_size, 2);
  EXPECT_EQ(c.vision.window_size, 112);
  EXPECT_EQ(c.vision.tokens_per_second, 2);
  EXPECT_EQ(c.vision.fullatt_block_indexes, (std::vector<int>{7, 15, 23, 31}));
  EXPECT_EQ(c.vision.hidden_act, "silu");
  EXPECT_EQ(c.vision.out_hidden_size, c.text.hidden_size);
  EXPECT_EQ(c.text.mrope_section, (std::vector<int>{16, 24, 24}));
  EXPECT_EQ(c.text.head_dim, 128);
  EXPECT_FLOAT_EQ(c.text.rope_theta, 1000000.0f);
  EXPECT_FLOAT_EQ(c.text.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.text.max_position_embeddings, 128000);
  EXPECT_EQ(c.model_type, "qwen2_5_vl");
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.image_token_id, 151655);
  EXPECT_EQ(c.video_token_id, 151656);
  EXPECT_EQ(c.vision_start_token_id, 151652);
  EXPECT_EQ(c.vision_end_token_id, 151653);
}

struct SizeCase {
  const char* file;
  int vocab, hidden, intermediate, layers, heads, kv_heads;
  bool tied;
  int64_t parameters;  // as the Hub model pages state them (8.29B for 7B, ...)
};

class OfficialConfigs : public ::testing::TestWithParam<SizeCase> {};

TEST_P(OfficialConfigs, ParseWithTheirValues) {
  const SizeCase& s = GetParam();
  ModelConfig c = load_fixture(s.file);
  expect_standard_vision(c);
  EXPECT_EQ(c.text.vocab_size, s.vocab);
  EXPECT_EQ(c.text.hidden_size, s.hidden);
  EXPECT_EQ(c.text.intermediate_size, s.intermediate);
  EXPECT_EQ(c.text.num_hidden_layers, s.layers);
  EXPECT_EQ(c.text.num_attention_heads, s.heads);
  EXPECT_EQ(c.text.num_key_value_heads, s.kv_heads);
  EXPECT_EQ(c.text.tie_word_embeddings, s.tied);
  EXPECT_EQ(count_parameters(c).total(), s.parameters);
  EXPECT_EQ(count_parameters(c).lm_head, s.tied ? 0 : int64_t(s.vocab) * s.hidden);
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, OfficialConfigs,
    ::testing::Values(
        SizeCase{"3B.json", 151936, 2048, 11008, 36, 16, 2, true, 3754622976},
        SizeCase{"7B.json", 152064, 3584, 18944, 28, 28, 4, false, 8292166656},
        SizeCase{"32B.json", 152064, 5120, 27648, 64, 40, 8, false, 33448292352},
        SizeCase{"72B.json", 152064, 8192, 29568, 80, 64, 8, false, 73406351360},
        SizeCase{"7B-transformers5.json", 152064, 3584, 18944, 28, 28, 4, false, 8292166656},
        SizeCase{"3B-minimal-vision.json", 151936, 2048, 11008, 36, 16, 2, true, 3754622976}),
    [](const auto& info) {
      std::string name = info.param.file;
      name = name.substr(0, name.find('.'));
      for (auto& c : name)
        if (c == '-') c = '_';
      return "config_" + name;
    });

TEST(Config, NestedLayoutMatchesFlat) {
  ModelConfig flat = load_fixture("7B.json");
  ModelConfig nested = load_fixture("7B-transformers5.json");
  EXPECT_EQ(nested.text.hidden_size, flat.text.hidden_size);
  EXPECT_EQ(nested.text.mrope_section, flat.text.mrope_section);
  EXPECT_EQ(nested.vision.fullatt_block_indexes, flat.vision.fullatt_block_indexes);
  EXPECT_EQ(nested.torch_dtype, "bfloat16");
}

TEST(Config, KvCacheBytes) {
  // 7B: 28 layers x 4 kv heads x 128 x (k and v) x 2 bytes = 57344 bytes per token.
  EXPECT_EQ(kv_cache_bytes_per_token(load_fixture("7B.json"), DType::BF16), 57344);
  EXPECT_EQ(kv_cache_bytes_per_token(load_fixture("72B.json"), DType::BF16), 327680);
}

TEST(Config, TinyConfigsInBothLayouts) {
  ModelConfig flat = parse_model_config(test::tiny_config_json(true), "flat");
  ModelConfig nested = parse_model_config(test::tiny_config_json(false, true), "nested");
  EXPECT_TRUE(flat.text.tie_word_embeddings);
  EXPECT_FALSE(nested.text.tie_word_embeddings);
  EXPECT_EQ(nested.torch_dtype, "float16");
  EXPECT_EQ(nested.text.head_dim, 8);
  EXPECT_EQ(nested.text.mrope_section, (std::vector<int>{2, 1, 1}));
  EXPECT_EQ(flat.vision.fullatt_block_indexes, std::vector<int>{1});
  EXPECT_EQ(flat.image_token_id, 60);
}

// Edits the 7B file and expects an Error whose message contains `needle`.
void expect_refused(const std::function<void(nlohmann::json&)>& edit, const std::string& needle) {
  nlohmann::json j = nlohmann::json::parse(fixture("7B.json"));
  edit(j);
  try {
    parse_model_config(j.dump(), "config.json");
    ADD_FAILURE() << "accepted, expected an error mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Config, OtherArchitecturesAreRefusedByName) {
  expect_refused([](auto& j) { j["model_type"] = "qwen2_vl"; },
                 "is a qwen2_vl checkpoint; qwenvl runs Qwen2.5-VL (model_type qwen2_5_vl)");
  expect_refused([](auto& j) { j["model_type"] = "llama"; }, "is a llama checkpoint");
  expect_refused([](auto& j) { j.erase("model_type"); }, "'model_type' is missing");
}

TEST(Config, InconsistentValuesAreRefused) {
  expect_refused(
      [](auto& j) {
        j["rope_scaling"]["mrope_section"] = {16, 24, 16};
      },
      "summing to head_dim/2 = 64");
  expect_refused([](auto& j) { j["num_key_value_heads"] = 5; },
                 "not divisible by num_key_value_heads");
  expect_refused([](auto& j) { j["num_attention_heads"] = 27; },
                 "not divisible by num_attention_heads");
  expect_refused([](auto& j) { j["hidden_size"] = 0; }, "'hidden_size' must be positive");
  expect_refused([](auto& j) { j["num_hidden_layers"] = -2; }, "must be positive");
  expect_refused([](auto& j) { j.erase("vocab_size"); }, "'vocab_size' is missing");
  expect_refused([](auto& j) { j["hidden_size"] = "3584"; }, "'hidden_size' should be an integer");
  expect_refused([](auto& j) { j["vision_config"]["out_hidden_size"] = 2048; }, "out_hidden_size");
  expect_refused(
      [](auto& j) {
        j["vision_config"]["fullatt_block_indexes"] = {7, 32};
      },
      "fullatt_block_indexes");
  expect_refused([](auto& j) { j.erase("rope_scaling"); }, "mrope_section");
  expect_refused([](auto& j) { j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4}}; }, "yarn");
  expect_refused([](auto& j) { j["torch_dtype"] = "int8"; }, "int8");
  expect_refused([](auto& j) { j.erase("vision_config"); }, "vision_config");
  expect_refused([](auto& j) { j["image_token_id"] = 999999; }, "outside the vocabulary");
}

TEST(Config, MalformedJsonIsAnError) {
  EXPECT_THROW(parse_model_config("{\"model_type\": ", "config.json"), Error);
  EXPECT_THROW(parse_model_config("[1, 2]", "config.json"), Error);
  EXPECT_THROW(parse_model_config("", "config.json"), Error);
}

TEST(Config, MissingFileNamesThePath) {
  try {
    load_model_config("/nonexistent/qwenvl-model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/qwenvl-model/config.json"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace qwenvl
