#include "checkpoint/model_size.h"

#include "checkpoint/checkpoint.h"

namespace qwenvl {

ParameterCounts count_parameters(const ModelConfig& config) {
  ParameterCounts counts;
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  for (const auto& t : expected_tensors(config)) {
    // An AWQ projection holds K·N parameters: qweight packs eight per int32; its zero points
    // and scales are the quantization's, not the model's.
    int64_t n = t.shape.numel();
    if (ends_with(t.name, ".qweight")) n *= 8;
    if (ends_with(t.name, ".qzeros") || ends_with(t.name, ".scales")) n = 0;
    if (t.name.rfind("visual.", 0) == 0)
      counts.vision += n;
    else if (t.name.rfind("lm_head.", 0) == 0)
      counts.lm_head += n;
    else
      counts.language += n;
  }
  return counts;
}

int64_t kv_cache_bytes_per_token(const ModelConfig& config, DType dtype) {
  const TextConfig& t = config.text;
  return 2 * int64_t(t.num_hidden_layers) * t.num_key_value_heads * t.head_dim *
         int64_t(dtype_size(dtype));
}

}  // namespace qwenvl
