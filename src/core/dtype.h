#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qwenvl {

// Q4: a packed 4-bit weight, one byte per element of its shape [rows, groups, group bytes]
// (backend/packed_int4.h lays the bytes out); ops that know it read it, any other op refuses it.
enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, Q4 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // "f32", "f16", "bf16", ...
// Parses our names and safetensors' ("F32", "BF16", ...); throws Error on anything else.
DType parse_dtype(std::string_view name);
bool is_float(DType dtype);

}  // namespace qwenvl
