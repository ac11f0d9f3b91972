#include "checkpoint/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>

#include "checkpoint/model_size.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/tensor_names.h"
#include "core/error.h"
#include "test_checkpoints.h"

namespace qwenvl {
namespace {

using test::TempDir;
using test::TestTensor;

// Expects Checkpoint::open to fail with a message containing every needle.
void expect_open_fails(const TempDir& dir, const ModelConfig& config,
                       std::initializer_list<std::string> needles) {
  try {
    Checkpoint::open(dir.path(), config);
    ADD_FAILURE() << "opened, expected an error";
  } catch (const Error& e) {
    std::string what = e.what();
    for (const auto& n : needles) EXPECT_NE(what.find(n), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
}

TEST(TensorNames, BothNamingsMapToHubNames) {
  EXPECT_EQ(canonical_tensor_name("visual.blocks.3.attn.qkv.weight"),
            "visual.blocks.3.attn.qkv.weight");
  EXPECT_EQ(canonical_tensor_name("model.visual.blocks.3.attn.qkv.weight"),
            "visual.blocks.3.attn.qkv.weight");
  EXPECT_EQ(canonical_tensor_name("model.language_model.layers.0.mlp.up_proj.weight"),
            "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(canonical_tensor_name("model.language_model.embed_tokens.weight"),
            "model.embed_tokens.weight");
  EXPECT_EQ(canonical_tensor_name("model.norm.weight"), "model.norm.weight");
  EXPECT_EQ(canonical_tensor_name("lm_head.weight"), "lm_head.weight");
  EXPECT_FALSE(canonical_tensor_name("transformer.h.0.attn.c_attn.weight"));
  EXPECT_FALSE(canonical_tensor_name("vision_tower.x"));
}

TEST(ExpectedTensors, SevenBHasTheModuleShapes) {
  ModelConfig c = parse_model_config(
      R"({"model_type":"qwen2_5_vl","vocab_size":152064,"hidden_size":3584,
          "intermediate_size":18944,"num_hidden_layers":28,"num_attention_heads":28,
          "num_key_value_heads":4,
          "rope_scaling":{"type":"mrope","mrope_section":[16,24,24]},
          "vision_config":{"hidden_size":1280,"out_hidden_size":3584}})",
      "7B");
  std::map<std::string, Shape> m;
  for (const auto& e : expected_tensors(c)) m[e.name] = e.shape;
  // 32 vision blocks x 12 + patch embed + 5 merger; 28 layers x 12 + embed + norm + lm_head.
  EXPECT_EQ(m.size(), size_t(32 * 12 + 1 + 5 + 28 * 12 + 3));
  EXPECT_EQ(m["visual.patch_embed.proj.weight"], (Shape{1280, 3, 2, 14, 14}));
  EXPECT_EQ(m["visual.blocks.31.attn.qkv.weight"], (Shape{3840, 1280}));
  EXPECT_EQ(m["visual.blocks.0.mlp.down_proj.weight"], (Shape{1280, 3420}));
  EXPECT_EQ(m["visual.blocks.0.mlp.gate_proj.bias"], (Shape{3420}));
  EXPECT_EQ(m["visual.merger.ln_q.weight"], (Shape{1280}));
  EXPECT_EQ(m["visual.merger.mlp.0.weight"], (Shape{5120, 5120}));
  EXPECT_EQ(m["visual.merger.mlp.2.weight"], (Shape{3584, 5120}));
  EXPECT_EQ(m["visual.merger.mlp.2.bias"], (Shape{3584}));
  EXPECT_EQ(m["model.embed_tokens.weight"], (Shape{152064, 3584}));
  EXPECT_EQ(m["model.layers.27.self_attn.k_proj.weight"], (Shape{512, 3584}));
  EXPECT_EQ(m["model.layers.27.self_attn.k_proj.bias"], (Shape{512}));
  EXPECT_EQ(m["model.layers.0.self_attn.o_proj.weight"], (Shape{3584, 3584}));
  EXPECT_EQ(m["model.layers.0.mlp.down_proj.weight"], (Shape{3584, 18944}));
  EXPECT_EQ(m["lm_head.weight"], (Shape{152064, 3584}));
  EXPECT_FALSE(m.count("visual.patch_embed.proj.bias"));
  EXPECT_FALSE(m.count("model.layers.0.self_attn.o_proj.bias"));
  EXPECT_FALSE(m.count("model.layers.0.mlp.up_proj.bias"));
}

TEST(Checkpoint, OpensASingleFileWithHubNames) {
  TempDir dir;
  ModelConfig config = test::write_tiny_checkpoint(dir, /*tied=*/true);
  Checkpoint ckpt = Checkpoint::open(dir.path(), config);
  EXPECT_EQ(ckpt.tensors().size(), expected_tensors(config).size());
  EXPECT_FALSE(ckpt.has("lm_head.weight"));
  const Tensor& embed = ckpt.get("model.embed_tokens.weight");
  EXPECT_EQ(embed.shape(), (Shape{64, 32}));
  EXPECT_EQ(embed.dtype(), DType::BF16);
  EXPECT_EQ(ckpt.file_of("model.norm.weight"), dir.file("model.safetensors"));
  EXPECT_EQ(ckpt.total_bytes(), size_t(count_parameters(config).total()) * 2);
  EXPECT_EQ(ckpt.disk_bytes_by_dtype().at(DType::BF16), ckpt.total_bytes());
  EXPECT_THROW(ckpt.get("lm_head.weight"), Error);
  EXPECT_THROW(ckpt.file_of("nope"), Error);
}

TEST(Checkpoint, DataMatchesWhatWasWritten) {
  TempDir dir;
  std::string json = test::tiny_config_json(true);
  test::write_file(dir.file("config.json"), json);
  ModelConfig config = parse_model_config(json, "config.json");
  auto tensors = test::all_tensors(config, "F32");
  std::string bytes = test::safetensors_bytes(tensors, 9);
  test::write_file(dir.file("model.safetensors"), bytes);
  Checkpoint ckpt = Checkpoint::open(dir.path(), config);
  // The first tensor written starts the data buffer; compare its bytes to the file's.
  SafetensorsHeader h =
      parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "x");
  const auto& first = h.tensors.front();
  const Tensor& t = ckpt.get(first.name);
  EXPECT_EQ(std::memcmp(t.data(), bytes.data() + h.data_offset + first.begin, t.nbytes()), 0);
}

TEST(Checkpoint, OpensShardsWithTransformers5Names) {
  TempDir dir;
  std::string json = test::tiny_config_json(/*tied=*/false, /*nested=*/true);
  test::write_file(dir.file("config.json"), json);
  ModelConfig config = parse_model_config(json, "config.json");
  auto tensors = test::all_tensors(config, "F16", /*transformers5_names=*/true);
  size_t half = tensors.size() / 2;
  std::vector<TestTensor> a(tensors.begin(), tensors.begin() + long(half)),
      b(tensors.begin() + long(half), tensors.end());
  test::write_file(dir.file("model-00001-of-00002.safetensors"), test::safetensors_bytes(a, 1));
  test::write_file(dir.file("model-00002-of-00002.safetensors"), test::safetensors_bytes(b, 2));
  nlohmann::json index;
  index["metadata"] = {{"total_size", 0}};
  for (const auto& t : a) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : b) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  test::write_file(dir.file("model.safetensors.index.json"), index.dump());

  Checkpoint ckpt = Checkpoint::open(dir.path(), config);
  EXPECT_TRUE(ckpt.has("lm_head.weight"));
  EXPECT_TRUE(ckpt.has("visual.merger.mlp.2.bias"));
  EXPECT_TRUE(ckpt.has("model.layers.1.self_attn.q_proj.bias"));
  EXPECT_EQ(ckpt.get("lm_head.weight").dtype(), DType::F16);
  EXPECT_EQ(ckpt.files().size(), 2u);
  EXPECT_EQ(ckpt.file_of("lm_head.weight"), dir.file("model-00002-of-00002.safetensors"));

  // An index naming a shard that is not there.
  index["weight_map"]["lm_head.weight"] = "model-00003-of-00002.safetensors";
  test::write_file(dir.file("model.safetensors.index.json"), index.dump());
  expect_open_fails(dir, config, {"model-00003-of-00002.safetensors", "lm_head.weight"});
  // An index that puts a tensor in the wrong shard.
  index["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors";
  test::write_file(dir.file("model.safetensors.index.json"), index.dump());
  expect_open_fails(dir, config, {"lm_head.weight", "model-00002-of-00002.safetensors"});
  // An index escaping the directory.
  index["weight_map"]["lm_head.weight"] = "../model.safetensors";
  test::write_file(dir.file("model.safetensors.index.json"), index.dump());
  expect_open_fails(dir, config, {"lm_head.weight", "not a file name inside"});
  // An index that is not JSON.
  test::write_file(dir.file("model.safetensors.index.json"), "{\"weight_map\": ");
  expect_open_fails(dir, config, {"model.safetensors.index.json", "not valid JSON"});
}

TEST(Checkpoint, TiedCheckpointMayStillStoreLmHead) {
  TempDir dir;
  std::string json = test::tiny_config_json(true);
  test::write_file(dir.file("config.json"), json);
  ModelConfig config = parse_model_config(json, "config.json");
  auto tensors = test::all_tensors(config, "BF16");
  tensors.push_back({"lm_head.weight", "BF16", {64, 32}});
  test::write_file(dir.file("model.safetensors"), test::safetensors_bytes(tensors, 3));
  Checkpoint ckpt = Checkpoint::open(dir.path(), config);
  EXPECT_FALSE(ckpt.has("lm_head.weight"));  // tied: the model reads embed_tokens
  EXPECT_GT(ckpt.disk_bytes_by_dtype().at(DType::BF16), ckpt.total_bytes());

  tensors.back().shape = {64, 31};
  test::write_file(dir.file("model.safetensors"), test::safetensors_bytes(tensors, 3));
  expect_open_fails(dir, config, {"lm_head.weight", "[64, 31]"});
}

// Writes the tiny untied config with `tensors` in one file and expects open to fail.
void expect_tensors_refused(std::vector<TestTensor> tensors,
                            std::initializer_list<std::string> needles) {
  TempDir dir;
  ModelConfig config = parse_model_config(test::tiny_config_json(false), "config.json");
  test::write_file(dir.file("model.safetensors"), test::safetensors_bytes(tensors, 5));
  expect_open_fails(dir, config, needles);
}

TEST(Checkpoint, MissingUnexpectedAndMisshapenTensors) {
  ModelConfig config = parse_model_config(test::tiny_config_json(false), "config.json");
  auto all = test::all_tensors(config, "BF16");

  auto missing = all;
  missing.erase(missing.begin() + 7);
  expect_tensors_refused(missing, {all[7].name, "missing"});

  auto missing_head = all;
  missing_head.pop_back();  // lm_head.weight, required when untied
  expect_tensors_refused(missing_head, {"lm_head.weight", "missing"});

  auto extra = all;
  extra.push_back({"model.layers.9.mlp.up_proj.weight", "BF16", {48, 32}});
  expect_tensors_refused(
      extra, {"unexpected tensor model.layers.9.mlp.up_proj.weight", "model.safetensors"});

  auto foreign = all;
  foreign.push_back({"transformer.wte.weight", "BF16", {4}});
  expect_tensors_refused(foreign, {"transformer.wte.weight", "not a Qwen2.5-VL weight name"});

  auto bias = all;
  bias.push_back({"model.layers.0.self_attn.o_proj.bias", "BF16", {32}});
  expect_tensors_refused(bias, {"model.layers.0.self_attn.o_proj.bias"});

  auto shaped = all;
  for (auto& t : shaped)
    if (t.name == "model.layers.1.self_attn.k_proj.weight") t.shape = {32, 32};
  expect_tensors_refused(shaped,
                         {"model.layers.1.self_attn.k_proj.weight", "[32, 32]", "[16, 32]"});

  auto both_names = all;
  both_names.push_back({"model.language_model.norm.weight", "BF16", {32}});
  expect_tensors_refused(both_names, {"model.norm.weight", "stored twice"});
}

TEST(Checkpoint, DuplicateAcrossShardsWithoutIndex) {
  TempDir dir;
  ModelConfig config = parse_model_config(test::tiny_config_json(false), "config.json");
  auto all = test::all_tensors(config, "BF16");
  test::write_file(dir.file("a.safetensors"), test::safetensors_bytes(all, 1));
  test::write_file(dir.file("b.safetensors"),
                   test::safetensors_bytes({{"model.norm.weight", "BF16", {32}}}, 2));
  expect_open_fails(dir, config, {"model.norm.weight", "a.safetensors", "b.safetensors"});
}

TEST(Checkpoint, WrongDtypeNamesTensorAndFile) {
  TempDir dir;
  ModelConfig config = parse_model_config(test::tiny_config_json(false), "config.json");
  std::string header = R"({"model.norm.weight":{"dtype":"I8","shape":[32],"data_offsets":[0,32]}})";
  test::write_file(dir.file("model.safetensors"),
                   test::raw_safetensors(header, std::string(32, 0)));
  expect_open_fails(dir, config, {"model.norm.weight", "model.safetensors", "I8"});
}

TEST(Checkpoint, DirectoryProblems) {
  ModelConfig config = parse_model_config(test::tiny_config_json(false), "config.json");
  TempDir dir;
  expect_open_fails(dir, config, {"no weights in", dir.path()});
  EXPECT_FALSE(Checkpoint::has_weight_files(dir.path()));
  try {
    Checkpoint::open(dir.file("absent"), config);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
  test::write_file(dir.file("model.safetensors"), "short");
  EXPECT_TRUE(Checkpoint::has_weight_files(dir.path()));
  expect_open_fails(dir, config, {"model.safetensors", "too short"});
}

TEST(Checkpoint, TruncatedFileIsRefused) {
  TempDir dir;
  test::write_tiny_checkpoint(dir, false);
  ModelConfig config = load_model_config(dir.path());
  // Writing the untied config with the tied file gives "missing lm_head"; rewrite properly first.
  auto all = test::all_tensors(config, "BF16");
  std::string bytes = test::safetensors_bytes(all, 4);
  test::write_file(dir.file("model.safetensors"), bytes.substr(0, bytes.size() - 1));
  expect_open_fails(dir, config, {"model.safetensors", "run past"});
}

}  // namespace
}  // namespace qwenvl
