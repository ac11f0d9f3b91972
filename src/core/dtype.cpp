#include "core/dtype.h"

#include "core/error.h"

namespace qwenvl {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return 4;
    case DType::F16:
      return 2;
    case DType::BF16:
      return 2;
    case DType::I32:
      return 4;
    case DType::I64:
      return 8;
    case DType::U8:
    case DType::Q4:
    case DType::F8E4M3:
      return 1;
  }
  return 0;
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "f32";
    case DType::F16:
      return "f16";
    case DType::BF16:
      return "bf16";
    case DType::I32:
      return "i32";
    case DType::I64:
      return "i64";
    case DType::U8:
      return "u8";
    case DType::Q4:
      return "q4";
    case DType::F8E4M3:
      return "f8e4m3";
  }
  return "?";
}

DType parse_dtype(std::string_view name) {
  if (name == "f32" || name == "F32" || name == "fp32" || name == "float32") return DType::F32;
  if (name == "f16" || name == "F16" || name == "fp16" || name == "float16") return DType::F16;
  if (name == "bf16" || name == "BF16" || name == "bfloat16") return DType::BF16;
  if (name == "i32" || name == "I32" || name == "int32") return DType::I32;
  if (name == "i64" || name == "I64" || name == "int64") return DType::I64;
  if (name == "u8" || name == "U8" || name == "uint8") return DType::U8;
  fail("unknown dtype '", name, "' (expected one of f32, f16, bf16, i32, i64, u8)");
}

bool is_float(DType dtype) {
  return dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
}

bool is_packed(DType dtype) { return dtype == DType::Q4 || dtype == DType::F8E4M3; }

}  // namespace qwenvl
