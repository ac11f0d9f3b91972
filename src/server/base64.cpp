#include "server/base64.h"

#include <array>

#include "core/error.h"

namespace qwenvl {

namespace {

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> table{};
  for (size_t i = 0; i < table.size(); ++i) table[i] = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) table[uint8_t(alphabet[i])] = int8_t(i);
  return table;
}

}  // namespace

std::vector<uint8_t> decode_base64(std::string_view text, const std::string& what) {
  static constexpr std::array<int8_t, 256> kTable = make_table();
  size_t length = text.size();
  while (length > 0 && text[length - 1] == '=' && text.size() - length < 2) --length;
  if (length % 4 == 1) fail(what, ": the base64 data has a length no encoder produces");
  std::vector<uint8_t> out;
  out.reserve(length / 4 * 3 + 2);
  uint32_t bits = 0;
  int count = 0;
  for (size_t i = 0; i < length; ++i) {
    const int8_t value = kTable[uint8_t(text[i])];
    if (value < 0)
      fail(what, ": the base64 data has an invalid character at offset ", i,
           " (expected A-Z, a-z, 0-9, '+', '/', and '=' only at the end)");
    bits = (bits << 6) | uint32_t(value);
    if (++count == 4) {
      out.push_back(uint8_t(bits >> 16));
      out.push_back(uint8_t(bits >> 8));
      out.push_back(uint8_t(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) {
    out.push_back(uint8_t(bits >> 4));
  } else if (count == 3) {
    out.push_back(uint8_t(bits >> 10));
    out.push_back(uint8_t(bits >> 2));
  }
  return out;
}

}  // namespace qwenvl
