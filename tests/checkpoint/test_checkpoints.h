#pragma once
// Test helpers: write safetensors files and small Qwen2.5-VL checkpoints into a temp directory.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/config.h"

namespace qwenvl::test {

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("qwenvl-ckpt-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// 8-byte little-endian length, the header, the data.
inline std::string raw_safetensors(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

struct TestTensor {
  std::string name;
  std::string dtype;  // "BF16", "F16", "F32"
  std::vector<int64_t> shape;
};

inline size_t test_dtype_size(const std::string& dtype) { return dtype == "F32" ? 4 : 2; }

// A valid safetensors file holding `tensors` back to back, filled with random bytes from `seed`.
inline std::string safetensors_bytes(const std::vector<TestTensor>& tensors, uint32_t seed,
                                     bool with_metadata = true) {
  nlohmann::ordered_json header;
  if (with_metadata) header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t n = test_dtype_size(t.dtype);
    for (int64_t d : t.shape) n *= uint64_t(d);
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8) text += ' ';  // the reference writer pads with spaces to 8 bytes
  std::mt19937 rng(seed);
  std::string data(offset, '\0');
  for (auto& c : data) c = char(rng() & 0xff);
  return raw_safetensors(text, data);
}

// A Qwen2.5-VL config small enough to write whole checkpoints of in tests.
inline std::string tiny_config_json(bool tied, bool nested = false) {
  nlohmann::json text = {
      {"vocab_size", 64},           {"hidden_size", 32},        {"intermediate_size", 48},
      {"num_hidden_layers", 2},     {"num_attention_heads", 4}, {"num_key_value_heads", 2},
      {"rms_norm_eps", 1e-6},       {"rope_theta", 1000000.0},  {"max_position_embeddings", 4096},
      {"tie_word_embeddings", tied}};
  nlohmann::json vision = {{"depth", 2},
                           {"hidden_size", 16},
                           {"intermediate_size", 24},
                           {"num_heads", 2},
                           {"in_chans", 3},
                           {"out_hidden_size", 32},
                           {"patch_size", 14},
                           {"spatial_merge_size", 2},
                           {"temporal_patch_size", 2},
                           {"window_size", 112},
                           {"fullatt_block_indexes", {1}},
                           {"tokens_per_second", 2}};
  nlohmann::json root = {{"model_type", "qwen2_5_vl"},  {"vision_config", vision},
                         {"image_token_id", 60},        {"video_token_id", 61},
                         {"vision_start_token_id", 62}, {"vision_end_token_id", 63}};
  if (nested) {
    text["rope_parameters"] = {{"rope_type", "default"}, {"mrope_section", {2, 1, 1}}};
    root["text_config"] = text;
    root["dtype"] = "float16";
  } else {
    for (auto it = text.begin(); it != text.end(); ++it) root[it.key()] = it.value();
    root["rope_scaling"] = {{"type", "mrope"}, {"mrope_section", {2, 1, 1}}};
    root["torch_dtype"] = "bfloat16";
  }
  return root.dump(2);
}

// Hub name -> transformers >= 4.52 name.
inline std::string transformers5_name(const std::string& hub) {
  if (hub.rfind("visual.", 0) == 0) return "model." + hub;
  if (hub.rfind("model.", 0) == 0) return "model.language_model." + hub.substr(6);
  return hub;
}

// Every tensor of `config` as TestTensors, optionally renamed to transformers-5 names.
inline std::vector<TestTensor> all_tensors(const ModelConfig& config, const std::string& dtype,
                                           bool transformers5_names = false) {
  std::vector<TestTensor> out;
  for (const auto& e : expected_tensors(config))
    out.push_back({transformers5_names ? transformers5_name(e.name) : e.name, dtype,
                   std::vector<int64_t>(e.shape.begin(), e.shape.end())});
  return out;
}

// Writes config.json and one model.safetensors with every tensor of the tiny config.
inline ModelConfig write_tiny_checkpoint(const TempDir& dir, bool tied, uint32_t seed = 1) {
  std::string json = tiny_config_json(tied);
  write_file(dir.file("config.json"), json);
  ModelConfig config = parse_model_config(json, "config.json");
  write_file(dir.file("model.safetensors"), safetensors_bytes(all_tensors(config, "BF16"), seed));
  return config;
}

}  // namespace qwenvl::test
