#include "text/utf8.h"

namespace qwenvl::utf8 {

namespace {

// The allowed range of the second byte after lead byte b (Unicode Table 3-7); the later bytes of
// any sequence are 80..BF. Returns false for bytes that never lead a sequence.
bool second_byte_range(unsigned char b, unsigned char& lo, unsigned char& hi, size_t& length) {
  lo = 0x80, hi = 0xBF;
  if (b >= 0xC2 && b <= 0xDF) {
    length = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    length = 3;
    if (b == 0xE0) lo = 0xA0;  // no overlongs
    if (b == 0xED) hi = 0x9F;  // no surrogates
  } else if (b >= 0xF0 && b <= 0xF4) {
    length = 4;
    if (b == 0xF0) lo = 0x90;  // no overlongs
    if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return false;
  }
  return true;
}

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

}  // namespace

size_t valid_sequence_length(std::string_view s, size_t i, size_t* invalid_len) {
  auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) return 1;
  unsigned char lo, hi;
  size_t length;
  size_t good = 1;  // bytes so far that still form a prefix of a well-formed sequence
  if (second_byte_range(b, lo, hi, length)) {
    if (i + 1 < s.size()) {
      auto b1 = static_cast<unsigned char>(s[i + 1]);
      if (b1 >= lo && b1 <= hi) {
        good = 2;
        while (good < length && i + good < s.size() &&
               is_continuation(static_cast<unsigned char>(s[i + good])))
          ++good;
        if (good == length) return length;
      }
    }
  }
  if (invalid_len) *invalid_len = good;
  return 0;
}

bool is_valid(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = valid_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string make_valid(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    size_t bad = 0;
    size_t n = valid_sequence_length(s, i, &bad);
    if (n) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      append(out, kReplacement);
      i += bad;
    }
  }
  return out;
}

size_t incomplete_tail_length(std::string_view s) {
  // A cut-short character is at most 3 bytes: look for its lead byte among the last three.
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    size_t start = s.size() - back;
    auto b = static_cast<unsigned char>(s[start]);
    if (is_continuation(b)) continue;
    unsigned char lo, hi;
    size_t length;
    if (!second_byte_range(b, lo, hi, length) || back >= length) return 0;
    if (back >= 2) {
      auto b1 = static_cast<unsigned char>(s[start + 1]);
      if (b1 < lo || b1 > hi) return 0;
      for (size_t k = 2; k < back; ++k)
        if (!is_continuation(static_cast<unsigned char>(s[start + k]))) return 0;
    }
    return back;
  }
  return 0;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | cp >> 6));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | cp >> 12));
    out.push_back(char(0x80 | (cp >> 6 & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | cp >> 18));
    out.push_back(char(0x80 | (cp >> 12 & 0x3F)));
    out.push_back(char(0x80 | (cp >> 6 & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

}  // namespace qwenvl::utf8
