#include "runtime/generation_config.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "runtime/generator.h"

namespace qwenvl {
namespace {

TEST(GenerationConfig, QwenDefaultsFile) {
  GenerationConfig c = parse_generation_config(
      R"({"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true,
          "eos_token_id": [151645, 151643], "repetition_penalty": 1.05, "temperature": 0.1,
          "top_p": 0.001, "top_k": 1})",
      "generation_config.json");
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{151645, 151643}));
  EXPECT_TRUE(c.do_sample);
  SamplingParams p = c.sampling();
  EXPECT_FLOAT_EQ(p.temperature, 0.1f);
  EXPECT_EQ(p.top_k, 1);
  EXPECT_FLOAT_EQ(p.top_p, 0.001f);
  EXPECT_FLOAT_EQ(p.repetition_penalty, 1.05f);
}

TEST(GenerationConfig, SingleEosAndGreedy) {
  GenerationConfig c = parse_generation_config(R"({"eos_token_id": 7, "temperature": 0.7})", "g");
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{7}));
  EXPECT_FALSE(c.do_sample);
  EXPECT_EQ(c.sampling().temperature, 0.0f);  // do_sample false: greedy whatever temperature says
}

TEST(GenerationConfig, MissingFileGivesDefaults) {
  GenerationConfig c = load_generation_config("/nonexistent/qwenvl/dir");
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_FALSE(c.do_sample);
}

TEST(GenerationConfig, WrongTypesAreErrors) {
  EXPECT_THROW(parse_generation_config(R"({"temperature": "hot"})", "g"), Error);
  EXPECT_THROW(parse_generation_config(R"({"eos_token_id": ["a"]})", "g"), Error);
  EXPECT_THROW(parse_generation_config("{not json", "g"), Error);
}

TEST(ContextLimit, CheckedBeforeWork) {
  EXPECT_NO_THROW(check_context(100, 28, 128));
  EXPECT_THROW(check_context(100, 29, 128), Error);
  EXPECT_THROW(check_context(10, 0, 128), Error);
  try {
    check_context(200, 100, 256);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("context limit of 256"), std::string::npos);
  }
}

}  // namespace
}  // namespace qwenvl
