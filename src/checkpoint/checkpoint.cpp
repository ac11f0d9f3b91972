// Checkpoint::open: find the weight files of a directory, read their headers, bring names to the
// canonical layout and check the result against what the config says the model holds.
#include "checkpoint/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "checkpoint/json_fields.h"
#include "checkpoint/safetensors.h"
#include "checkpoint/tensor_names.h"
#include "core/error.h"
#include "core/file_read.h"

namespace qwenvl {

namespace fs = std::filesystem;

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

std::string read_text(const std::string& path) {
  return read_text_file(path, kMaxJsonFileBytes, "checkpoint index");
}

// A shard name from the index must stay inside the model directory.
void check_shard_name(const std::string& file, const std::string& tensor,
                      const std::string& index) {
  fs::path p(file);
  bool escapes = file.empty() || p.is_absolute();
  for (const auto& part : p)
    if (part == "..") escapes = true;
  if (escapes)
    fail(index, " maps tensor ", tensor, " to '", file,
         "', which is not a file name inside the "
         "model directory");
}

// weight_map of the index: tensor name on disk -> shard file name.
std::map<std::string, std::string> read_index(const std::string& path) {
  nlohmann::json root = json_fields::parse_json(read_text(path), path);
  if (!root.is_object() || !root.contains("weight_map") || !root["weight_map"].is_object())
    fail(path, " has no 'weight_map' object");
  std::map<std::string, std::string> map;
  for (auto it = root["weight_map"].begin(); it != root["weight_map"].end(); ++it) {
    if (!it->is_string())
      fail(path, ": weight_map entry for ", it.key(), " should be a file name, found ",
           it->type_name());
    check_shard_name(it->get<std::string>(), it.key(), path);
    map[it.key()] = it->get<std::string>();
  }
  if (map.empty()) fail(path, " has an empty weight_map");
  return map;
}

std::vector<std::string> safetensors_in(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.size() > 12 && name.substr(name.size() - 12) == ".safetensors") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

bool Checkpoint::has_weight_files(const std::string& model_dir) {
  return fs::exists(fs::path(model_dir) / kIndexName) || !safetensors_in(model_dir).empty();
}

Checkpoint Checkpoint::open(const std::string& model_dir, const ModelConfig& config) {
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec))
    fail("model directory ", model_dir, " does not exist or is not a directory");

  // Which files, and (when sharded) which tensor the index promises in each.
  std::map<std::string, std::string> index;
  std::vector<std::string> names;
  const std::string index_path = (fs::path(model_dir) / kIndexName).string();
  if (fs::exists(index_path)) {
    index = read_index(index_path);
    std::set<std::string> unique;
    for (const auto& [tensor, file] : index) unique.insert(file);
    names.assign(unique.begin(), unique.end());
    for (const auto& name : names)
      if (!fs::is_regular_file(fs::path(model_dir) / name))
        fail(index_path, " names ", name, " (for tensor ",
             std::find_if(index.begin(), index.end(), [&](auto& kv) { return kv.second == name; })
                 ->first,
             "), which is not in ", model_dir);
  } else if (fs::exists(fs::path(model_dir) / kSingleName)) {
    names = {kSingleName};
  } else {
    names = safetensors_in(model_dir);
    if (names.empty())
      fail("no weights in ", model_dir, " (expected model.safetensors or ", kIndexName, ")");
  }

  Checkpoint ckpt;
  std::map<std::string, std::string> disk_name;  // canonical -> name as stored, for messages
  for (const auto& name : names) {
    std::string path = (fs::path(model_dir) / name).string();
    SafetensorsFile file = SafetensorsFile::open(path);
    ckpt.mappings_.push_back(file.file);
    ckpt.file_names_.push_back(path);
    for (const auto& entry : file.header.tensors) {
      if (!index.empty()) {
        auto it = index.find(entry.name);
        if (it == index.end())
          fail("tensor ", entry.name, " in ", path, " is not listed in ", index_path);
        if (it->second != name)
          fail(index_path, " puts tensor ", entry.name, " in ", it->second, " but ", path,
               " holds it");
      }
      auto canonical = canonical_tensor_name(entry.name);
      if (!canonical)
        fail("unexpected tensor ", entry.name, " in ", path,
             " (not a Qwen2.5-VL weight name; is this a Qwen2.5-VL checkpoint?)");
      if (auto prev = ckpt.files_.find(*canonical); prev != ckpt.files_.end())
        fail("tensor ", *canonical, " is stored twice: as ", disk_name[*canonical], " in ",
             prev->second, " and as ", entry.name, " in ", path);
      ckpt.disk_bytes_[entry.dtype] += size_t(entry.end - entry.begin);
      ckpt.tensors_[*canonical] = file.view(entry);
      ckpt.files_[*canonical] = path;
      disk_name[*canonical] = entry.name;
    }
  }
  for (const auto& [tensor, file] : index)
    if (!canonical_tensor_name(tensor) || !ckpt.files_.count(*canonical_tensor_name(tensor)))
      fail(index_path, " lists tensor ", tensor, " in ", file, ", but ", file, " does not hold it");

  // Against the config: every expected tensor present with its shape, nothing else.
  // An AWQ checkpoint's MLP width is read from its first quantized gate projection (scales
  // [K/G, width]); wider than the config's, it must be whole groups wider, zeros that load drops.
  ckpt.mlp_width_ = ckpt.stored_mlp_width_ = config.text.intermediate_size;
  const std::string gate_scales = "model.layers.0.mlp.gate_proj.scales";
  if (config.quantization.quantizes("model.layers.0.mlp.gate_proj") &&
      ckpt.tensors_.count(gate_scales) && ckpt.tensors_[gate_scales].rank() == 2) {
    const int64_t stored = ckpt.tensors_[gate_scales].dim(1), f = config.text.intermediate_size;
    if (stored > f) {
      if (f % config.quantization.group_size != 0 || stored % 8 != 0)
        fail("tensor ", gate_scales, " in ", ckpt.files_[gate_scales], " pads the MLP width ", f,
             " to ", stored, "; qwenvl drops such padding only when ", f,
             " is a multiple of group_size ", config.quantization.group_size);
      ckpt.stored_mlp_width_ = stored;
    }
  }
  std::vector<ExpectedTensor> expected = expected_tensors(
      config, ckpt.stored_mlp_width_ != ckpt.mlp_width_ ? ckpt.stored_mlp_width_ : 0);
  std::map<std::string, const ExpectedTensor*> want;
  for (const auto& e : expected) want[e.name] = &e;
  if (config.text.tie_word_embeddings && ckpt.tensors_.count("lm_head.weight")) {
    const Tensor& head = ckpt.tensors_["lm_head.weight"];
    Shape shape{config.text.vocab_size, config.text.hidden_size};
    if (!(head.shape() == shape))
      fail("tensor lm_head.weight in ", ckpt.files_["lm_head.weight"], " has shape ",
           head.shape().str(), ", expected ", shape.str());
    ckpt.tensors_.erase("lm_head.weight");
    ckpt.files_.erase("lm_head.weight");
  }
  for (const auto& [name, tensor] : ckpt.tensors_) {
    auto it = want.find(name);
    if (it == want.end())
      fail("unexpected tensor ", disk_name[name], " in ", ckpt.files_[name],
           " (config.json describes no such weight)");
    if (!(tensor.shape() == it->second->shape))
      fail("tensor ", disk_name[name], " in ", ckpt.files_[name], " has shape ",
           tensor.shape().str(), ", but config.json implies ", it->second->shape.str());
    const std::optional<DType>& dtype = it->second->dtype;
    if (dtype ? tensor.dtype() != *dtype : !is_float(tensor.dtype()))
      fail("tensor ", disk_name[name], " in ", ckpt.files_[name], " has dtype ",
           dtype_name(tensor.dtype()), ", expected ",
           dtype ? std::string(dtype_name(*dtype)) : std::string("a float dtype"),
           dtype ? " (the AWQ format of config.json's quantization_config)" : "");
  }
  size_t missing = 0;
  std::string first_missing;
  for (const auto& e : expected)
    if (!ckpt.tensors_.count(e.name) && missing++ == 0) first_missing = e.name;
  if (missing)
    fail("tensor ", first_missing, " is missing from ", model_dir,
         missing > 1 ? cat(" (and ", missing - 1, " more)") : std::string(),
         "; the weights do not match config.json");
  return ckpt;
}

bool Checkpoint::has(const std::string& canonical_name) const {
  return tensors_.count(canonical_name) > 0;
}

const Tensor& Checkpoint::get(const std::string& canonical_name) const {
  auto it = tensors_.find(canonical_name);
  if (it == tensors_.end()) fail("tensor ", canonical_name, " not found in the checkpoint");
  return it->second;
}

void Checkpoint::release_pages(const Tensor& t) const {
  const auto* p = static_cast<const uint8_t*>(t.data());
  const size_t bytes = size_t(t.numel()) * dtype_size(t.dtype());
  for (const auto& file : mappings_)
    if (p >= file->data() && p + bytes <= file->data() + file->size()) {
      MappedFile::release(p, bytes);
      return;
    }
}

const std::string& Checkpoint::file_of(const std::string& canonical_name) const {
  auto it = files_.find(canonical_name);
  if (it == files_.end()) fail("tensor ", canonical_name, " not found in the checkpoint");
  return it->second;
}

size_t Checkpoint::total_bytes() const {
  size_t total = 0;
  for (const auto& [name, t] : tensors_) total += t.nbytes();
  return total;
}

}  // namespace qwenvl
