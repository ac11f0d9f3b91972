#pragma once
// The shape of parameters stacked along their first dimension (Backend::upload_weight_stacked),
// shared by the backends so both refuse the same mismatches.
#include <vector>

#include "core/tensor.h"

namespace qwenvl {

// Error unless every part has the same rank and trailing dimensions.
Shape stacked_shape(const std::vector<Tensor>& parts, const char* op);

}  // namespace qwenvl
