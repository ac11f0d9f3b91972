#pragma once
// A tensor's element as a double, whatever its dtype, for the tests' naive references.
#include <cstdint>

#include "core/half.h"
#include "core/tensor.h"

namespace qwenvl::test {

inline double get(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::F32:
      return t.data<float>()[i];
    case DType::BF16:
      return bf16_to_float(t.data<uint16_t>()[i]);
    case DType::F16:
      return fp16_to_float(t.data<uint16_t>()[i]);
    case DType::I32:
      return t.data<int32_t>()[i];
    default:
      return 0;
  }
}

}  // namespace qwenvl::test
