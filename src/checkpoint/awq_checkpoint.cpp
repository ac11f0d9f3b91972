#include "checkpoint/awq_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "checkpoint/awq.h"
#include "checkpoint/checkpoint.h"
#include "checkpoint/json_fields.h"
#include "checkpoint/safetensors_writer.h"
#include "core/error.h"
#include "core/file_read.h"
#include "core/half.h"

namespace qwenvl {

namespace fs = std::filesystem;

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out.flush()) fail("cannot write ", path);
}

// An f32 tensor in `dtype` (f32, bf16, f16), rounded to nearest even.
Tensor in_dtype(const Tensor& f32, DType dtype) {
  if (dtype == DType::F32) return f32;
  Tensor out = Tensor::empty(f32.shape(), dtype);
  for (int64_t i = 0; i < f32.numel(); ++i) {
    const float v = f32.data<float>()[i];
    out.data<uint16_t>()[i] = dtype == DType::BF16 ? float_to_bf16(v) : float_to_fp16(v);
  }
  return out;
}

// Files other than the weights and config.json (tokenizer, processor, generation settings).
void copy_side_files(const std::string& src_dir, const std::string& dst_dir) {
  for (const auto& entry : fs::directory_iterator(src_dir)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name == "config.json" ||
        name == "model.safetensors.index.json" || entry.path().extension() == ".safetensors")
      continue;
    fs::copy_file(entry.path(), fs::path(dst_dir) / name, fs::copy_options::overwrite_existing);
  }
}

}  // namespace

void write_awq_checkpoint(const std::string& src_dir, int64_t group_size,
                          const AwqCheckpointPaths& out, DType dequantized_dtype) {
  if (dequantized_dtype != DType::F32 && dequantized_dtype != DType::BF16 &&
      dequantized_dtype != DType::F16)
    fail("the dequantized checkpoint must be f32, bf16 or f16, not ",
         dtype_name(dequantized_dtype));
  const std::string config_path = src_dir + "/config.json";
  nlohmann::json config_json = json_fields::parse_json(
      read_text_file(config_path, kMaxJsonFileBytes, "model config"), config_path);
  const ModelConfig source = load_model_config(src_dir);
  if (source.quantization.awq()) fail(src_dir, " is already an AWQ checkpoint");
  const Checkpoint checkpoint = Checkpoint::open(src_dir, source);

  // AutoAWQ's config for Qwen2.5-VL (the official checkpoints' quantization_config).
  config_json["quantization_config"] = {{"bits", 4},
                                        {"group_size", group_size},
                                        {"modules_to_not_convert", {"visual"}},
                                        {"quant_method", "awq"},
                                        {"version", "gemm"},
                                        {"zero_point", true}};
  ModelConfig quantized = source;
  quantized.quantization = parse_quantization_config(config_json, config_path);
  std::set<std::string> modules;  // the projections expected_tensors stores as AWQ's tensors
  for (const ExpectedTensor& t : expected_tensors(quantized)) {
    const std::string suffix = ".qweight";
    if (t.name.size() > suffix.size() &&
        t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0)
      modules.insert(t.name.substr(0, t.name.size() - suffix.size()));
  }

  std::vector<std::pair<std::string, Tensor>> awq, dequantized;
  for (const auto& [name, tensor] : checkpoint.tensors()) {
    const std::string module = name.substr(0, name.rfind('.'));
    if (!modules.count(module) || name != module + ".weight") {
      awq.emplace_back(name, tensor);
      dequantized.emplace_back(name, tensor);
      continue;
    }
    const Int4Values values = quantize_round_to_nearest(tensor, group_size);
    const AwqTensors packed = pack_awq(values);
    awq.emplace_back(module + ".qweight", packed.qweight);
    awq.emplace_back(module + ".qzeros", packed.qzeros);
    awq.emplace_back(module + ".scales", packed.scales);
    if (!out.dequantized_dir.empty())
      dequantized.emplace_back(name, in_dtype(dequantize(values), dequantized_dtype));
  }

  fs::create_directories(out.awq_dir);
  write_text(out.awq_dir + "/config.json", config_json.dump(2));
  write_safetensors(out.awq_dir + "/model.safetensors", awq);
  copy_side_files(src_dir, out.awq_dir);
  if (out.dequantized_dir.empty()) return;
  config_json.erase("quantization_config");
  fs::create_directories(out.dequantized_dir);
  write_text(out.dequantized_dir + "/config.json", config_json.dump(2));
  write_safetensors(out.dequantized_dir + "/model.safetensors", dequantized);
  copy_side_files(src_dir, out.dequantized_dir);
}

}  // namespace qwenvl
