#pragma once
// A checkpoint directory's weights: every *.safetensors file (single or sharded through
// model.safetensors.index.json) memory-mapped and validated, tensors looked up by their
// canonical (Hub) name whatever naming the files use.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "checkpoint/mapped_file.h"
#include "core/tensor.h"

namespace qwenvl {

struct ExpectedTensor {
  std::string name;  // canonical Hub name: "visual.blocks.0.attn.qkv.weight", "model.layers.0...",
                     // "model.embed_tokens.weight", "lm_head.weight"
  Shape shape;
  // The one dtype allowed (AWQ's I32 qweight/qzeros and F16 scales); otherwise any float dtype.
  std::optional<DType> dtype;
};

// Every tensor a Qwen2.5-VL checkpoint of this config holds, with its shape (lm_head only when
// untied). A quantized projection (config.quantization) holds qweight, qzeros and scales in place
// of its weight (checkpoint/awq.h); Error when its sizes do not split into AWQ's groups.
// quantized_mlp_width: the MLP width the quantized gate/up/down projections are stored with
// (0: intermediate_size); AWQ checkpoints may pad it to whole groups (the 72B's 29,568 to 29,696).
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& config,
                                             int64_t quantized_mlp_width = 0);

class Checkpoint {
 public:
  // Opens DIR: maps the files, parses and validates every header, maps names to canonical
  // ones, and checks the set against expected_tensors(config): missing, unexpected, wrong shape
  // or dtype (non-float, or not the quantized format's) -> Error naming the tensor and file. Reads
  // headers only: the data stays mapped and untouched until used. A tied checkpoint that still
  // stores lm_head.weight is accepted (shape checked) and that tensor dropped: tied models use
  // model.embed_tokens.weight.
  static Checkpoint open(const std::string& model_dir, const ModelConfig& config);

  bool has(const std::string& canonical_name) const;
  // A CPU tensor viewing the mapped bytes, in the file's dtype (bf16/f16/f32). Error if absent.
  const Tensor& get(const std::string& canonical_name) const;
  // After a weight's bytes were copied elsewhere (a fused projection stacked on the host), drops
  // its mapped pages from resident memory. `t` must come from get(); other tensors are ignored.
  void release_pages(const Tensor& t) const;
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }
  const std::string& file_of(const std::string& canonical_name) const;
  size_t total_bytes() const;
  // Bytes of tensor data on disk per dtype, counting every stored tensor (also an lm_head.weight
  // that a tied checkpoint stores but qwenvl does not use).
  const std::map<DType, size_t>& disk_bytes_by_dtype() const { return disk_bytes_; }
  // The safetensors files opened, in the order read.
  const std::vector<std::string>& files() const { return file_names_; }

  // The MLP width of the quantized projections as stored, and the config's: an AWQ checkpoint
  // may store gate/up with padded output rows and down with padded input columns (zeros), which
  // the loader drops. Equal when nothing is padded.
  int64_t stored_mlp_width() const { return stored_mlp_width_; }
  int64_t mlp_width() const { return mlp_width_; }

  // Whether DIR holds any weights (model.safetensors, an index, or any *.safetensors), without
  // opening them.
  static bool has_weight_files(const std::string& model_dir);

 private:
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> files_;
  std::vector<std::shared_ptr<MappedFile>> mappings_;
  std::map<DType, size_t> disk_bytes_;
  std::vector<std::string> file_names_;
  int64_t stored_mlp_width_ = 0, mlp_width_ = 0;
};

}  // namespace qwenvl
