#pragma once
// generation_config.json of a checkpoint: the defaults transformers' generate() would use
// (eos ids, sampling parameters). Flags on the command line override them.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace qwenvl {

struct GenerationConfig {
  std::vector<int32_t> eos_token_ids;  // `eos_token_id`: one int or a list
  bool do_sample = false;              // false: greedy, whatever the sampling fields say
  float temperature = 1.0f;
  int top_k = 50;  // transformers' default when the file has none
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  std::optional<int64_t> max_new_tokens;

  // What Backend::sample should do: greedy (temperature 0) unless do_sample.
  SamplingParams sampling() const;
};

// DIR/generation_config.json, or the defaults above when the file is absent. Error for a file
// that is not valid JSON or has a field of the wrong type.
GenerationConfig load_generation_config(const std::string& model_dir);
GenerationConfig parse_generation_config(const std::string& json_text,
                                         const std::string& source_name);

}  // namespace qwenvl
