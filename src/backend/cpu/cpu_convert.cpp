#include "backend/cpu/cpu_convert.h"

#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"
#include "core/half.h"

namespace qwenvl {

void convert_to_f32(const void* src, DType src_dtype, float* dst, int64_t n) {
  switch (src_dtype) {
    case DType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case DType::BF16:
      cpu_kernels().bf16_to_f32(static_cast<const uint16_t*>(src), dst, n);
      return;
    case DType::F16:
      cpu_kernels().f16_to_f32(static_cast<const uint16_t*>(src), dst, n);
      return;
    default:
      fail_internal("cannot convert a ", dtype_name(src_dtype), " tensor to f32");
  }
}

void convert_elements(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n,
                      const char* what) {
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, size_t(n) * dtype_size(src_dtype));
    return;
  }
  if (!is_float(src_dtype) || !is_float(dst_dtype))
    fail_internal(what, ": cannot convert ", dtype_name(src_dtype), " to ", dtype_name(dst_dtype),
                  " (only float dtypes convert into each other)");
  if (dst_dtype == DType::F32) {
    convert_to_f32(src, src_dtype, static_cast<float*>(dst), n);
    return;
  }
  // Narrowing: through fp32 one element at a time (bf16 <-> f16 goes through fp32 exactly, as
  // torch does).
  auto* out = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) {
    float f;
    switch (src_dtype) {
      case DType::F32:
        f = static_cast<const float*>(src)[i];
        break;
      case DType::BF16:
        f = bf16_to_float(static_cast<const uint16_t*>(src)[i]);
        break;
      default:
        f = fp16_to_float(static_cast<const uint16_t*>(src)[i]);
        break;
    }
    out[i] = dst_dtype == DType::BF16 ? float_to_bf16(f) : float_to_fp16(f);
  }
}

}  // namespace qwenvl
