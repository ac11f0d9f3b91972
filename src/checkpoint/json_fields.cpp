#include "checkpoint/json_fields.h"

#include <cmath>

#include "core/error.h"

namespace qwenvl::json_fields {

namespace {
const nlohmann::json* present(const nlohmann::json& obj, const std::string& key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void wrong_type(const std::string& key, const Place& at, const char* expected,
                             const nlohmann::json& value) {
  fail(at.source, ": field '", at.field(key), "' should be ", expected, ", found ",
       value.type_name());
}
}  // namespace

std::optional<int64_t> optional_int(const nlohmann::json& obj, const std::string& key,
                                    const Place& at) {
  const nlohmann::json* v = present(obj, key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  // Some writers emit integral values as floats (e.g. 32.0); accept those, refuse 32.5.
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.0e15) return int64_t(d);
  }
  wrong_type(key, at, "an integer", *v);
}

std::optional<double> optional_number(const nlohmann::json& obj, const std::string& key,
                                      const Place& at) {
  const nlohmann::json* v = present(obj, key);
  if (!v) return std::nullopt;
  if (v->is_number()) return v->get<double>();
  wrong_type(key, at, "a number", *v);
}

std::optional<bool> optional_bool(const nlohmann::json& obj, const std::string& key,
                                  const Place& at) {
  const nlohmann::json* v = present(obj, key);
  if (!v) return std::nullopt;
  if (v->is_boolean()) return v->get<bool>();
  wrong_type(key, at, "true or false", *v);
}

std::optional<std::string> optional_string(const nlohmann::json& obj, const std::string& key,
                                           const Place& at) {
  const nlohmann::json* v = present(obj, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  wrong_type(key, at, "a string", *v);
}

std::optional<std::vector<int64_t>> optional_int_list(const nlohmann::json& obj,
                                                      const std::string& key, const Place& at) {
  const nlohmann::json* v = present(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_array()) wrong_type(key, at, "a list of integers", *v);
  std::vector<int64_t> out;
  for (const auto& item : *v) {
    if (!item.is_number_integer()) wrong_type(key, at, "a list of integers", item);
    out.push_back(item.get<int64_t>());
  }
  return out;
}

int64_t required_int(const nlohmann::json& obj, const std::string& key, const Place& at) {
  auto v = optional_int(obj, key, at);
  if (!v) fail(at.source, ": required field '", at.field(key), "' is missing");
  return *v;
}

nlohmann::json parse_json(const std::string& text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    std::string why = e.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; keep only the human part.
    if (auto pos = why.find("] "); pos != std::string::npos) why = why.substr(pos + 2);
    fail(source, " is not valid JSON (", why, ")");
  }
}

}  // namespace qwenvl::json_fields
