#include "checkpoint/model_size.h"

#include "checkpoint/checkpoint.h"

namespace qwenvl {

ParameterCounts count_parameters(const ModelConfig& config) {
  ParameterCounts counts;
  for (const auto& t : expected_tensors(config)) {
    int64_t n = t.shape.numel();
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
