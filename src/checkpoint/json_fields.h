#pragma once
// Typed reads of JSON fields that fail with an Error naming the file and the field path, so a
// malformed config.json or safetensors header gives one readable sentence instead of
// nlohmann's type_error.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qwenvl::json_fields {

// Where a field lives, for messages: "config.json: text_config.hidden_size".
struct Place {
  const std::string& source;
  std::string path;  // "" for the root object
  std::string field(const std::string& key) const { return path.empty() ? key : path + "." + key; }
};

// nullopt when the key is absent or null; Error when present with the wrong type.
std::optional<int64_t> optional_int(const nlohmann::json& obj, const std::string& key,
                                    const Place& at);
std::optional<double> optional_number(const nlohmann::json& obj, const std::string& key,
                                      const Place& at);
std::optional<bool> optional_bool(const nlohmann::json& obj, const std::string& key,
                                  const Place& at);
std::optional<std::string> optional_string(const nlohmann::json& obj, const std::string& key,
                                           const Place& at);
std::optional<std::vector<int64_t>> optional_int_list(const nlohmann::json& obj,
                                                      const std::string& key, const Place& at);

// Same, but absence is an Error too.
int64_t required_int(const nlohmann::json& obj, const std::string& key, const Place& at);

// Parses text as JSON; Error "<source> is not valid JSON (...)" otherwise.
nlohmann::json parse_json(const std::string& text, const std::string& source);

}  // namespace qwenvl::json_fields
