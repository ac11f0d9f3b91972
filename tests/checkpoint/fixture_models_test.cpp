// Opens the tiny real checkpoints that tools/make_reference.py writes (docs/FIXTURES.md):
// transformers' own save_pretrained output, so names, dtypes and layouts are the genuine ones.
#include <gtest/gtest.h>

#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;

const fs::path kModels = fs::path(QWENVL_FIXTURES_DIR) / "models";

TEST(FixtureModels, TinyTiedIsBf16SingleFileHubNames) {
  fs::path dir = kModels / "tiny-tied";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " not generated yet (tools/make_reference.py)";
  ModelConfig config = load_model_config(dir.string());
  EXPECT_TRUE(config.text.tie_word_embeddings);
  Checkpoint ckpt = Checkpoint::open(dir.string(), config);
  EXPECT_EQ(ckpt.tensors().size(), expected_tensors(config).size());
  EXPECT_FALSE(ckpt.has("lm_head.weight"));
  EXPECT_EQ(ckpt.files().size(), 1u);
  EXPECT_EQ(ckpt.get("model.embed_tokens.weight").dtype(), DType::BF16);
}

TEST(FixtureModels, TinyUntiedIsF16ShardedTransformers5Names) {
  fs::path dir = kModels / "tiny-untied";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " not generated yet (tools/make_reference.py)";
  ModelConfig config = load_model_config(dir.string());
  EXPECT_FALSE(config.text.tie_word_embeddings);
  Checkpoint ckpt = Checkpoint::open(dir.string(), config);
  EXPECT_EQ(ckpt.tensors().size(), expected_tensors(config).size());
  EXPECT_TRUE(ckpt.has("lm_head.weight"));
  EXPECT_GE(ckpt.files().size(), 2u);
  EXPECT_EQ(ckpt.get("lm_head.weight").dtype(), DType::F16);
}

// Any other model directory a later fixture adds must open too.
TEST(FixtureModels, EveryFixtureModelOpens) {
  if (!fs::is_directory(kModels)) GTEST_SKIP() << kModels << " not generated yet";
  int opened = 0;
  for (const auto& entry : fs::directory_iterator(kModels)) {
    if (!entry.is_directory() || !fs::exists(entry.path() / "config.json")) continue;
    SCOPED_TRACE(entry.path().string());
    ModelConfig config = load_model_config(entry.path().string());
    Checkpoint ckpt = Checkpoint::open(entry.path().string(), config);
    EXPECT_EQ(ckpt.tensors().size(), expected_tensors(config).size());
    ++opened;
  }
  EXPECT_GT(opened, 0);
}

}  // namespace
}  // namespace qwenvl
