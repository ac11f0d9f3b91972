// Fuzzing of the JSON config readers a checkpoint directory feeds qwenvl: config.json,
// generation_config.json and preprocessor_config.json, mutated byte by byte (common/mutate.h) and
// structurally (a value replaced with an extreme number, a string, a list, an object or null).
// Every outcome must be a config within the readers' bounds or a qwenvl::Error; anything else (a
// crash, another exception type, a sanitizer report) fails. Seeded, so a failure reproduces.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "checkpoint/config.h"
#include "common/mutate.h"
#include "core/error.h"
#include "runtime/generation_config.h"
#include "runtime/sampling_limits.h"
#include "vision/preprocess.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kTiny = fs::path(QWENVL_FIXTURES_DIR) / "models" / "tiny-untied";
const fs::path kConfigs = fs::path(QWENVL_FIXTURES_DIR) / "configs";

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every leaf of `j`, so that one can be replaced.
void leaves(json& j, std::vector<json*>& out) {
  if (j.is_object() || j.is_array()) {
    for (auto& child : j) leaves(child, out);
  } else {
    out.push_back(&j);
  }
}

json extreme_value(std::mt19937& rng) {
  switch (rng() % 12) {
    case 0:
      return -1;
    case 1:
      return 0;
    case 2:
      return int64_t(1) << 31;
    case 3:
      return std::numeric_limits<int64_t>::max();
    case 4:
      return std::numeric_limits<int64_t>::min();
    case 5:
      return 1e308;
    case 6:
      return -1e-320;
    case 7:
      return std::numeric_limits<uint64_t>::max();
    case 8:
      return "mrope";
    case 9:
      return json::array({1, 2, 3, 4, 5});
    case 10:
      return json::object();
    default:
      return nullptr;
  }
}

std::string mutate_structure(const std::string& text, std::mt19937& rng) {
  json j = json::parse(text);
  std::vector<json*> all;
  leaves(j, all);
  for (int edits = 1 + int(rng() % 3); edits > 0 && !all.empty(); --edits)
    *all[rng() % all.size()] = extreme_value(rng);
  return j.dump();
}

std::string mutated(const std::string& text, std::mt19937& rng) {
  return rng() % 2 ? mutate_structure(text, rng) : test::mutate(text, rng);
}

// Runs `parse` on `iterations` mutations of each seed text; counts the parses and refusals.
template <typename Parse>
void fuzz(const char* what, const std::vector<std::string>& seeds, int iterations, Parse parse) {
  const uint32_t seed = 20261204;
  std::mt19937 rng(seed);
  int parsed = 0, refused = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::string text = mutated(seeds[size_t(i) % seeds.size()], rng);
    try {
      parse(text);
      ++parsed;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << what << " iteration " << i << " (seed " << seed
             << ") threw a non-Error: " << e.what() << "\n"
             << text;
    }
  }
  EXPECT_GT(parsed, iterations / 50) << what << ": the mutations must also keep valid files";
  EXPECT_GT(refused, iterations / 10) << what;
}

TEST(ConfigFuzz, ModelConfigs) {
  std::vector<std::string> seeds = {read(kTiny / "config.json")};
  for (const char* name : {"3B.json", "7B-transformers5.json", "72B.json"})
    seeds.push_back(read(kConfigs / name));
  fuzz("config.json", seeds, 4000, [](const std::string& text) {
    const ModelConfig c = parse_model_config(text, "config.json");
    ASSERT_GT(c.text.hidden_size, 0);
    ASSERT_LE(c.text.hidden_size, 1 << 16);
    ASSERT_LE(c.text.num_hidden_layers, 1024);
    ASSERT_LE(c.text.vocab_size, 1 << 22);
    ASSERT_LE(c.vision.depth, 1024);
    ASSERT_EQ(c.text.hidden_size % c.text.num_attention_heads, 0);
  });
}

TEST(ConfigFuzz, GenerationConfigs) {
  const std::vector<std::string> seeds = {
      read(kTiny / "generation_config.json"),
      R"({"do_sample": true, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "min_p": 0.05,
          "repetition_penalty": 1.05, "max_new_tokens": 128, "eos_token_id": [151645, 151643]})"};
  fuzz("generation_config.json", seeds, 4000, [](const std::string& text) {
    const GenerationConfig c = parse_generation_config(text, "generation_config.json");
    ASSERT_TRUE(kTemperatureRange.holds(c.temperature));
    ASSERT_TRUE(kTopPRange.holds(c.top_p));
    ASSERT_TRUE(kMinPRange.holds(c.min_p));
    ASSERT_TRUE(kRepetitionPenaltyRange.holds(c.repetition_penalty));
    ASSERT_GE(c.top_k, 0);
    for (int32_t id : c.eos_token_ids) ASSERT_GE(id, 0);
  });
}

TEST(ConfigFuzz, PreprocessorConfigs) {
  const fs::path dir =
      fs::temp_directory_path() / ("qwenvl_config_fuzz_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::vector<std::string> seeds = {read(kTiny / "preprocessor_config.json")};
  fuzz("preprocessor_config.json", seeds, 2000, [&](const std::string& text) {
    std::ofstream(dir / "preprocessor_config.json", std::ios::binary | std::ios::trunc) << text;
    const PreprocessConfig c = load_preprocess_config(dir.string());
    ASSERT_GE(c.min_pixels, 1);
    ASSERT_LE(c.min_pixels, c.max_pixels);
    ASSERT_LE(c.max_pixels, kMaxResizedPixels);
    ASSERT_GE(c.patch_size, 1);
    ASSERT_LE(c.patch_size, 64);
  });
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qwenvl
