#pragma once
// Standard base64 (RFC 4648 §4) as data: URLs carry images: strict alphabet, '=' padding optional.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qwenvl {

// Error naming `what` for a character outside the alphabet, padding in the middle or a length
// no encoder produces.
std::vector<uint8_t> decode_base64(std::string_view text, const std::string& what);

}  // namespace qwenvl
