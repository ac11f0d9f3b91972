#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qwenvl {

enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // "f32", "f16", "bf16", ...
// Parses our names and safetensors' ("F32", "BF16", ...); throws Error on anything else.
DType parse_dtype(std::string_view name);
bool is_float(DType dtype);

}  // namespace qwenvl
