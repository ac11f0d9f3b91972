#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qwenvl {

// Packed weights, one byte per element of their shape; ops that know them read them (linear), any
// other op refuses them:
// - Q4: 4-bit values with per-group scales and zero points, [rows, groups, group bytes]
//   (backend/packed_int4.h);
// - F8E4M3: OCP FP8 E4M3 values with a per-row fp32 scale, [rows, k/16 + 1, 16]
//   (backend/packed_fp8.h).
enum class DType : uint8_t { F32, F16, BF16, I32, I64, U8, Q4, F8E4M3 };

size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);  // "f32", "f16", "bf16", ...
// Parses our names and safetensors' ("F32", "BF16", ...); throws Error on anything else.
DType parse_dtype(std::string_view name);
bool is_float(DType dtype);
bool is_packed(DType dtype);  // Q4, F8E4M3

}  // namespace qwenvl
