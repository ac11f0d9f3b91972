#pragma once
// A tiny random Qwen2.5-VL checkpoint written to a temporary directory (config.json +
// model.safetensors in f32), for tests that check the model against itself (chunking, caching)
// without the reference fixtures.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"

namespace qwenvl::test {

// Special ids of the synthetic vocabulary (256 tokens).
constexpr int32_t kSynthVisionStart = 248, kSynthVisionEnd = 249, kSynthImagePad = 250,
                  kSynthVideoPad = 251;

// cuda_heads: head dims of 16 (hidden sizes doubled), the smallest the CUDA attention takes.
inline std::string synthetic_config_json(bool tied, int layers = 2, int vision_depth = 2,
                                         bool cuda_heads = false) {
  const int wide = cuda_heads ? 2 : 1;
  nlohmann::json c = {
      {"architectures", {"Qwen2_5_VLForConditionalGeneration"}},
      {"model_type", "qwen2_5_vl"},
      {"torch_dtype", "float32"},
      {"vocab_size", 256},
      {"hidden_size", 32 * wide},
      {"intermediate_size", 48 * wide},
      {"num_hidden_layers", layers},
      {"num_attention_heads", 4},
      {"num_key_value_heads", 2},
      {"max_position_embeddings", 4096},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 10000.0},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", tied},
      {"image_token_id", kSynthImagePad},
      {"video_token_id", kSynthVideoPad},
      {"vision_start_token_id", kSynthVisionStart},
      {"vision_end_token_id", kSynthVisionEnd},
      {"rope_scaling",
       {{"type", "mrope"},
        {"mrope_section", cuda_heads ? std::vector<int>{2, 3, 3} : std::vector<int>{1, 1, 2}}}},
      {"vision_config",
       {{"depth", vision_depth},
        {"hidden_size", 16 * wide},
        // Not a multiple of 8, as Qwen2.5-VL's 3420: the MLP's width is stored residue first
        // (36 columns, 28 zero columns, 64 columns).
        {"intermediate_size", 100},
        {"num_heads", 2},
        {"in_chans", 3},
        {"out_hidden_size", 32 * wide},
        {"patch_size", 14},
        {"spatial_merge_size", 2},
        {"temporal_patch_size", 2},
        {"window_size", 112},
        {"fullatt_block_indexes", {1}},
        {"tokens_per_second", 2},
        {"hidden_act", "silu"}}},
  };
  return c.dump(2);
}

// Writes the checkpoint into a fresh directory under the system temp dir and returns its path.
// layers / vision_depth: decoder layers and vision blocks (2 each by default); cuda_heads: see
// synthetic_config_json.
inline std::string write_synthetic_checkpoint(const std::string& name, bool tied, uint32_t seed,
                                              int layers = 2, int vision_depth = 2,
                                              bool cuda_heads = false) {
  namespace fs = std::filesystem;
  const fs::path dir =
      fs::temp_directory_path() / ("qwenvl_synth_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string config_text = synthetic_config_json(tied, layers, vision_depth, cuda_heads);
  std::ofstream(dir / "config.json") << config_text;
  const ModelConfig config = parse_model_config(config_text, "config.json");

  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> weight(-0.25f, 0.25f), gain(0.8f, 1.2f);
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const ExpectedTensor& t : expected_tensors(config)) {
    const bool is_norm = t.name.find("norm") != std::string::npos && t.shape.rank() == 1;
    const size_t begin = data.size();
    for (int64_t i = 0; i < t.shape.numel(); ++i) {
      float v = is_norm ? gain(rng) : weight(rng);
      data.append(reinterpret_cast<const char*>(&v), 4);
    }
    header[t.name] = {{"dtype", "F32"},
                      {"shape", std::vector<int64_t>(t.shape.begin(), t.shape.end())},
                      {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(dir / "model.safetensors", std::ios::binary);
  const uint64_t len = h.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << h << data;
  return dir.string();
}

// A synthetic checkpoint written and opened: its config and tensors.
struct SynthModel {
  ModelConfig config;
  Checkpoint checkpoint;
};

inline SynthModel open_synthetic_model(const std::string& name, bool tied, uint32_t seed,
                                       int layers = 2, int vision_depth = 2,
                                       bool cuda_heads = false) {
  const std::string dir =
      write_synthetic_checkpoint(name, tied, seed, layers, vision_depth, cuda_heads);
  ModelConfig config = load_model_config(dir);
  Checkpoint checkpoint = Checkpoint::open(dir, config);
  return SynthModel{config, std::move(checkpoint)};
}

}  // namespace qwenvl::test
