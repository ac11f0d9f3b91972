#include "cli/model_flags.h"

#include "cli/plan_report.h"
#include "core/error.h"

namespace qwenvl::cli {

DType parse_cuda_dtype(const std::string& name) {
  if (name == "bf16") return DType::BF16;
  if (name == "fp16") return DType::F16;
  fail("--dtype must be bf16 or fp16, got '", name, "'");
}

PlacementOptions placement_options(const Args& args) {
  PlacementOptions options;
  options.max_memory = args.get("max-memory").value_or("");
  options.offload = args.get("offload").value_or("auto");
  if (auto map = args.get("device-map")) options.device_map = read_device_map(*map);
  options.measure_bandwidths = args.has("verbose");
  return options;
}

}  // namespace qwenvl::cli
