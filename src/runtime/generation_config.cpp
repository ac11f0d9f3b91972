#include "runtime/generation_config.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "checkpoint/json_fields.h"
#include "core/error.h"

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
  if (root.contains("eos_token_id") && root["eos_token_id"].is_array()) {
    const std::vector<int64_t> ids = *optional_int_list(root, "eos_token_id", at);
    for (int64_t id : ids) c.eos_token_ids.push_back(int32_t(id));
  } else if (auto id = optional_int(root, "eos_token_id", at)) {
    c.eos_token_ids.push_back(int32_t(*id));
  }
  if (auto v = optional_bool(root, "do_sample", at)) c.do_sample = *v;
  if (auto v = optional_number(root, "temperature", at)) c.temperature = float(*v);
  if (auto v = optional_int(root, "top_k", at)) c.top_k = int(*v);
  if (auto v = optional_number(root, "top_p", at)) c.top_p = float(*v);
  if (auto v = optional_number(root, "min_p", at)) c.min_p = float(*v);
  if (auto v = optional_number(root, "repetition_penalty", at)) c.repetition_penalty = float(*v);
  if (auto v = optional_int(root, "max_new_tokens", at)) c.max_new_tokens = *v;
  return c;
}

GenerationConfig load_generation_config(const std::string& model_dir) {
  const std::filesystem::path path = std::filesystem::path(model_dir) / "generation_config.json";
  if (!std::filesystem::exists(path)) return GenerationConfig{};
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", path.string());
  std::stringstream text;
  text << in.rdbuf();
  return parse_generation_config(text.str(), path.string());
}

}  // namespace qwenvl
