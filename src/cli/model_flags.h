#pragma once
// Flags that generate and serve share: the CUDA dtype and where the weights go on the GPUs.
#include <string>

#include "cli/args.h"
#include "core/dtype.h"
#include "runtime/model_setup.h"

namespace qwenvl::cli {

// --dtype: bf16 or fp16 (the CUDA backend's activations and weights).
DType parse_cuda_dtype(const std::string& name);

// --max-memory, --offload and --device-map FILE.json (read here).
PlacementOptions placement_options(const Args& args);

}  // namespace qwenvl::cli
