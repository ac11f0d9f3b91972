#pragma once
// Element conversions between the dtypes a CPU tensor can hold. Widening (bf16/f16 -> f32) is
// exact; narrowing rounds to nearest even as torch's .to() does (core/half.h).
#include <cstdint>

#include "core/dtype.h"
#include "core/half.h"

namespace qwenvl {

// Element i of a float-dtype array as fp32 (for small vectors: biases, norm weights).
inline float element_as_f32(const void* base, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::BF16:
      return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::F16:
      return fp16_to_float(static_cast<const uint16_t*>(base)[i]);
    default:
      return static_cast<const float*>(base)[i];
  }
}

// dst[i] = float(src[i]) for a float dtype src.
void convert_to_f32(const void* src, DType src_dtype, float* dst, int64_t n);
// Any float dtype to any float dtype, or a same-dtype copy of any dtype. Throws Error for
// conversions between integer and float dtypes (`what` names the caller in the message).
void convert_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
                      const char* what);

}  // namespace qwenvl
