#pragma once
// UTF-8 helpers with the exact replacement rules the reference uses: Python's
// bytes.decode("utf-8", "replace") and Rust's String::from_utf8_lossy both turn each maximal
// subpart of an ill-formed sequence into one U+FFFD (Unicode 15, section 3.9, "U+FFFD
// Substitution of Maximal Subparts").
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qwenvl::utf8 {

inline constexpr char32_t kReplacement = 0xFFFD;

// Length of the well-formed sequence starting at s[i], or 0 when s[i] does not start one (then
// *invalid_len, if given, receives the length of the maximal subpart to replace, at least 1).
size_t valid_sequence_length(std::string_view s, size_t i, size_t* invalid_len = nullptr);

// True when s is well-formed UTF-8.
bool is_valid(std::string_view s);

// s with each maximal ill-formed subpart replaced by U+FFFD; returns s unchanged when valid.
std::string make_valid(std::string_view s);

// The number of trailing bytes of s that form a proper prefix of some well-formed sequence (a
// character cut short that more bytes could still complete); 0 when s ends on a boundary.
size_t incomplete_tail_length(std::string_view s);

// Decodes the well-formed sequence of length n at p (n from valid_sequence_length).
inline char32_t decode_valid(const unsigned char* p, size_t n) {
  switch (n) {
    case 1:
      return p[0];
    case 2:
      return char32_t(p[0] & 0x1F) << 6 | (p[1] & 0x3F);
    case 3:
      return char32_t(p[0] & 0x0F) << 12 | char32_t(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    default:
      return char32_t(p[0] & 0x07) << 18 | char32_t(p[1] & 0x3F) << 12 |
             char32_t(p[2] & 0x3F) << 6 | (p[3] & 0x3F);
  }
}

void append(std::string& out, char32_t cp);

}  // namespace qwenvl::utf8
