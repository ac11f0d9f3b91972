#include "runtime/model_modules.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "backend/backend.h"
#include "backend/packed_fp8.h"
#include "backend/packed_int4.h"
#include "backend/residue_first.h"
#include "checkpoint/checkpoint.h"
#include "core/error.h"

namespace qwenvl {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The module a tensor belongs to: "visual", "model.layers.N", or the name without its last part.
std::string module_of(const std::string& tensor) {
  if (tensor.rfind("visual.", 0) == 0) return "visual";
  if (tensor.rfind("model.layers.", 0) == 0) {
    const size_t end = tensor.find('.', std::string("model.layers.").size());
    return tensor.substr(0, end);
  }
  return tensor.substr(0, tensor.rfind('.'));
}

// The allocation a tensor is loaded into: the stacked projections (decoder.cpp and
// vision_tower.cpp load functions) share one; any other tensor has its own.
std::string allocation_of(std::string tensor) {
  // AWQ's three tensors of a projection are packed into one weight (model/weight_loader.cpp).
  for (const char* awq : {".qweight", ".qzeros", ".scales"})
    if (ends_with(tensor, awq))
      tensor = tensor.substr(0, tensor.size() - std::strlen(awq)) + ".weight";
  static const std::pair<const char*, const char*> kStacked[] = {
      {"q_proj.weight", "qkv.weight"},
      {"k_proj.weight", "qkv.weight"},
      {"v_proj.weight", "qkv.weight"},
      {"q_proj.bias", "qkv.bias"},
      {"k_proj.bias", "qkv.bias"},
      {"v_proj.bias", "qkv.bias"},
      {"gate_proj.weight", "gate_up.weight"},
      {"up_proj.weight", "gate_up.weight"},
      {"gate_proj.bias", "gate_up.bias"},
      {"up_proj.bias", "gate_up.bias"},
  };
  for (const auto& [part, stacked] : kStacked)
    if (ends_with(tensor, part))
      return tensor.substr(0, tensor.size() - std::strlen(part)) + stacked;
  return tensor;
}

// Elements the tensor takes as stored: the vision MLP's width residue first (gate/up rows, down
// columns), zeros in the gap.
int64_t stored_elements(const ExpectedTensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  if (t.name.rfind("visual.blocks.", 0) != 0) return n;
  if (ends_with(t.name, "mlp.gate_proj.weight") || ends_with(t.name, "mlp.up_proj.weight") ||
      ends_with(t.name, "mlp.gate_proj.bias") || ends_with(t.name, "mlp.up_proj.bias"))
    return n / t.shape[0] * ResidueFirst{t.shape[0]}.width();
  if (ends_with(t.name, "mlp.down_proj.weight"))
    return t.shape[0] * ResidueFirst{t.shape[1]}.width();
  return n;
}

// Bytes the tensor takes on a device holding weights in `dtype`: AWQ's qweight [K, N/8] stands
// for the packed 4-bit weight (backend/packed_int4.h) with its scales and zero points, so
// qzeros and scales add nothing of their own; a projection converted to FP8 at load takes its
// FP8 rows with their scales (backend/packed_fp8.h).
int64_t stored_bytes(const ExpectedTensor& t, DType dtype, const QuantizationConfig& quant) {
  if (ends_with(t.name, ".qzeros") || ends_with(t.name, ".scales")) return 0;
  const std::string weight = ".weight";
  if (ends_with(t.name, weight) &&
      quant.converts_to_fp8(t.name.substr(0, t.name.size() - weight.size())))
    return Fp8Layout::make(t.shape[0], t.shape[1], t.name.c_str()).shape().numel();
  if (ends_with(t.name, ".qweight"))
    return Int4Layout::make(t.shape[1] * 8, t.shape[0], quant.group_size, t.name.c_str())
        .shape()
        .numel();
  return stored_elements(t) * int64_t(dtype_size(dtype));
}

// The streamed group an allocation belongs to when its module streams ("" for none), as
// load_decoder_weights and load_vision_weights form them: a decoder layer without its input norm,
// each vision block.
std::string stream_group_of(const std::string& allocation) {
  if (allocation.rfind("model.layers.", 0) == 0)
    return ends_with(allocation, "input_layernorm.weight") ? "" : module_of(allocation);
  if (allocation.rfind("visual.blocks.", 0) == 0) {
    const size_t end = allocation.find('.', std::string("visual.blocks.").size());
    return allocation.substr(0, end);
  }
  return "";
}

}  // namespace

std::vector<ModelModule> model_modules(const ModelConfig& config, DType dtype) {
  std::vector<ModelModule> modules;
  std::map<std::string, size_t> index;         // module name -> position in `modules`
  std::map<std::string, int64_t> allocations;  // allocation -> bytes, per module below
  std::map<std::string, std::string> owner;    // allocation -> module
  for (const ExpectedTensor& t : expected_tensors(config)) {
    const std::string module = module_of(t.name);
    if (!index.count(module)) {
      index[module] = modules.size();
      ModelModule m;
      m.name = module;
      if (module.rfind("model.layers.", 0) == 0)
        m.layer = std::stoi(module.substr(std::string("model.layers.").size()));
      m.read_per_token =
          module != "visual" && (module != "model.embed_tokens" || config.text.tie_word_embeddings);
      modules.push_back(m);
    }
    const std::string allocation = allocation_of(t.name);
    allocations[allocation] += stored_bytes(t, dtype, config.quantization);
    owner[allocation] = module;
  }
  std::map<std::string, int64_t> groups;  // streamed group -> bytes (see stream_group_of)
  for (const auto& [allocation, stored] : allocations) {
    ModelModule& m = modules[index[owner[allocation]]];
    const int64_t bytes = int64_t(allocation_size(size_t(stored)));
    m.weight_bytes += bytes;
    const std::string group = stream_group_of(allocation);
    if (group.empty()) continue;
    m.streamed_bytes += bytes;
    groups[group] += bytes;
  }
  for (const auto& [group, bytes] : groups) {
    ModelModule& m = modules[index[module_of(group + ".")]];
    m.stream_group_bytes = std::max(m.stream_group_bytes, bytes);
  }
  return modules;
}

}  // namespace qwenvl
