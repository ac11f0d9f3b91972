#include "text/byte_level.h"

#include <array>

#include "text/utf8.h"

namespace qwenvl::byte_level {

namespace {

struct Alphabet {
  std::array<char32_t, 256> char_of{};
  std::array<int, 0x144> byte_of{};  // all alphabet characters are below U+0144

  Alphabet() {
    byte_of.fill(-1);
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char_of[size_t(b)] = printable ? char32_t(b) : char32_t(256 + next++);
      byte_of[char_of[size_t(b)]] = b;
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

char32_t char_of_byte(unsigned char b) { return alphabet().char_of[b]; }

std::optional<std::string> to_bytes(std::string_view text) {
  const Alphabet& a = alphabet();
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t n = utf8::valid_sequence_length(text, i);
    if (n == 0) return std::nullopt;
    char32_t c = utf8::decode_valid(reinterpret_cast<const unsigned char*>(text.data()) + i, n);
    if (c >= a.byte_of.size() || a.byte_of[c] < 0) return std::nullopt;
    out.push_back(char(a.byte_of[c]));
    i += n;
  }
  return out;
}

std::string from_bytes(std::string_view bytes) {
  std::string out;
  for (unsigned char b : bytes) utf8::append(out, char_of_byte(b));
  return out;
}

}  // namespace qwenvl::byte_level
