#include "checkpoint/quantization.h"

#include <algorithm>
#include <cctype>

#include "checkpoint/json_fields.h"
#include "core/error.h"

namespace qwenvl {

namespace {

using json = nlohmann::json;
using json_fields::Place;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::vector<std::string> string_list(const json& obj, const std::string& key, const Place& at) {
  std::vector<std::string> out;
  if (!obj.contains(key) || obj[key].is_null()) return out;
  if (!obj[key].is_array())
    fail(at.source, ": field '", at.field(key), "' should be a list of module names, found ",
         obj[key].type_name());
  for (const json& v : obj[key]) {
    if (!v.is_string())
      fail(at.source, ": field '", at.field(key), "' holds ", v.dump(), ", not a module name");
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

bool QuantizationConfig::quantizes(const std::string& module) const {
  if (!awq() || module.rfind("model.layers.", 0) != 0) return false;
  for (const std::string& skip : modules_to_not_convert)
    if (!skip.empty() && module.find(skip) != std::string::npos) return false;
  return true;
}

bool QuantizationConfig::converts_to_fp8(const std::string& module) const {
  const std::string suffix = "_proj";
  return fp8_at_load && module.rfind("model.layers.", 0) == 0 && module.size() > suffix.size() &&
         module.compare(module.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void apply_quantize_option(QuantizationConfig& q, const std::string& value) {
  if (value.empty()) return;
  if (value != "fp8")
    fail("--quantize ", value, " is not supported; the one value is fp8 (8-bit E4M3 weights)");
  if (!q.method.empty())
    fail("--quantize fp8 needs a 16-bit checkpoint, but this one is stored quantized (", q.method,
         "); drop --quantize to run it as it is");
  q.fp8_at_load = true;
}

QuantizationConfig parse_quantization_config(const json& root, const std::string& source) {
  QuantizationConfig q;
  if (!root.contains("quantization_config") || root["quantization_config"].is_null()) return q;
  const json& c = root["quantization_config"];
  Place at{source, "quantization_config"};
  if (!c.is_object())
    fail(source, ": field 'quantization_config' should be an object, found ", c.type_name());
  const auto method = json_fields::optional_string(c, "quant_method", at);
  if (!method) fail(source, ": required field '", at.field("quant_method"), "' is missing");
  if (lower(*method) != "awq")
    fail(source, ": quantization method '", *method,
         "' is not supported; qwenvl reads AWQ checkpoints (quant_method awq) and 16-bit ones");
  q.method = "awq";

  // AutoAWQ writes w_bit / q_group_size in its own files; transformers' AwqConfig bits /
  // group_size.
  auto bits = json_fields::optional_int(c, "bits", at);
  if (!bits) bits = json_fields::optional_int(c, "w_bit", at);
  if (!bits) fail(source, ": required field '", at.field("bits"), "' is missing");
  if (*bits != 4)
    fail(source, ": AWQ with ", *bits, "-bit weights is not supported; qwenvl reads 4-bit AWQ");
  q.bits = 4;
  auto group = json_fields::optional_int(c, "group_size", at);
  if (!group) group = json_fields::optional_int(c, "q_group_size", at);
  if (!group) fail(source, ": required field '", at.field("group_size"), "' is missing");
  if (*group <= 0 || *group % 2 != 0 || *group > (1 << 16))
    fail(source, ": ", at.field("group_size"), " is ", *group,
         "; qwenvl reads AWQ with an even group size of at most 65536 (per-channel -1 is not "
         "supported)");
  q.group_size = *group;
  if (!json_fields::optional_bool(c, "zero_point", at).value_or(true))
    fail(source, ": AWQ without zero points (", at.field("zero_point"),
         " false) is not supported; qwenvl reads AWQ with zero points");
  const std::string version =
      lower(json_fields::optional_string(c, "version", at).value_or("gemm"));
  if (version != "gemm")
    fail(source, ": AWQ version '", version,
         "' is not supported; qwenvl reads the GEMM layout (version gemm) that the official "
         "checkpoints use");
  q.modules_to_not_convert = string_list(c, "modules_to_not_convert", at);
  return q;
}

}  // namespace qwenvl
