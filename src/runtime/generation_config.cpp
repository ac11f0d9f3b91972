#include "runtime/generation_config.h"

#include <filesystem>
#include <limits>
#include <optional>

#include "checkpoint/json_fields.h"
#include "core/error.h"
#include "core/file_read.h"
#include "runtime/sampling_limits.h"

namespace qwenvl {

SamplingParams GenerationConfig::sampling() const {
  SamplingParams p;
  p.temperature = do_sample ? temperature : 0.0f;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repetition_penalty = repetition_penalty;
  return p;
}

GenerationConfig parse_generation_config(const std::string& json_text,
                                         const std::string& source_name) {
  using namespace json_fields;
  const nlohmann::json root = parse_json(json_text, source_name);
  const Place at{source_name, ""};
  if (!root.is_object()) fail(source_name, " must hold a JSON object");
  GenerationConfig c;
  std::vector<int64_t> eos;
  if (root.contains("eos_token_id") && root["eos_token_id"].is_array())
    eos = *optional_int_list(root, "eos_token_id", at);
  else if (auto id = optional_int(root, "eos_token_id", at))
    eos.push_back(*id);
  for (int64_t id : eos) {
    if (id < 0 || id > std::numeric_limits<int32_t>::max())
      fail(source_name, ": eos_token_id ", id, " is not a token id");
    c.eos_token_ids.push_back(int32_t(id));
  }
  if (auto v = optional_bool(root, "do_sample", at)) c.do_sample = *v;
  // Each number must lie in its range (runtime/sampling_limits.h); an Error names this file.
  auto number = [&](const char* key, const SettingRange& range) -> std::optional<double> {
    auto v = optional_number(root, key, at);
    if (v && !range.holds(*v))
      fail(source_name, ": ", key, " is ", *v, "; it must be in [", range.min, ", ", range.max,
           "]");
    return v;
  };
  if (auto v = number("temperature", kTemperatureRange)) c.temperature = float(*v);
  if (auto v = number("top_k", kTopKRange)) c.top_k = int(*v);
  if (auto v = number("top_p", kTopPRange)) c.top_p = float(*v);
  if (auto v = number("min_p", kMinPRange)) c.min_p = float(*v);
  if (auto v = number("repetition_penalty", kRepetitionPenaltyRange))
    c.repetition_penalty = float(*v);
  if (auto v = optional_int(root, "max_new_tokens", at)) {
    if (*v < 1 || *v > kMaxNewTokensLimit)
      fail(source_name, ": max_new_tokens is ", *v, "; it must be in [1, ", kMaxNewTokensLimit,
           "]");
    c.max_new_tokens = *v;
  }
  return c;
}

GenerationConfig load_generation_config(const std::string& model_dir) {
  const std::filesystem::path path = std::filesystem::path(model_dir) / "generation_config.json";
  if (!std::filesystem::exists(path)) return GenerationConfig{};
  return parse_generation_config(
      read_text_file(path.string(), kMaxJsonFileBytes, "generation config"), path.string());
}

}  // namespace qwenvl
