#pragma once
// Shared by the text tests: the real Qwen tokenizer (loaded once per test binary) and base64.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "text/tokenizer.h"

namespace qwenvl::test {

inline std::string fixture_path(const std::string& relative) {
  return std::string(QWENVL_FIXTURES_DIR) + "/" + relative;
}

inline const Tokenizer& qwen_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::load(fixture_path("tokenizer/tokenizer.json"));
  return tokenizer;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string base64_decode(const std::string& in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  int acc = 0, bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0) continue;  // '=' padding
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return out;
}

}  // namespace qwenvl::test
