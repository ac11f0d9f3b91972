#include "checkpoint/tensor_names.h"

#include <string_view>

namespace qwenvl {

namespace {
bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
}  // namespace

std::optional<std::string> canonical_tensor_name(const std::string& name) {
  std::string_view s = name;
  if (starts_with(s, "model.visual.")) return "visual." + std::string(s.substr(13));
  if (starts_with(s, "model.language_model.")) return "model." + std::string(s.substr(21));
  if (starts_with(s, "visual.") || starts_with(s, "model.") || starts_with(s, "lm_head."))
    return name;
  return std::nullopt;
}

}  // namespace qwenvl
