#pragma once
// Sizes derived from a config alone: parameter counts and KV-cache bytes. `qwenvl inspect` prints
// them, and the memory planner budgets with them.
#include <cstdint>

#include "checkpoint/config.h"
#include "core/dtype.h"

namespace qwenvl {

struct ParameterCounts {
  int64_t vision = 0;    // visual.* (patch embedding, blocks, merger)
  int64_t language = 0;  // model.* (embeddings, decoder layers, final norm)
  int64_t lm_head = 0;   // 0 when tied to the embeddings
  int64_t total() const { return vision + language + lm_head; }
};

// The model's parameters, quantized or not (an AWQ checkpoint counts as its 16-bit original).
ParameterCounts count_parameters(const ModelConfig& config);

// Keys and values of every decoder layer for one token: 2 * layers * kv_heads * head_dim * size.
int64_t kv_cache_bytes_per_token(const ModelConfig& config, DType dtype);

}  // namespace qwenvl
