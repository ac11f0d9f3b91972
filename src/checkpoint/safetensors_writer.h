#pragma once
// Writes host tensors as one safetensors file (the format checkpoint/safetensors.h reads): the
// checkpoint tools' output (awq_checkpoint.h).
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace qwenvl {

// Tensors in the order given; dtypes f32, f16, bf16, i32. Error if the file cannot be written.
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace qwenvl
