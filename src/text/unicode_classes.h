#pragma once
// Per-code-point classes the tokenizer needs on its hot path, looked up in one byte table built
// once from utf8proc: Unicode letter (\p{L}), number (\p{N}), White_Space (\s as Oniguruma and
// Rust's regex define it), and "NFC-inert" (a character that NFC leaves alone whatever surrounds
// it, so a run of them needs no normalization).
#include <cstdint>

namespace qwenvl::unicode {

enum ClassBits : uint8_t {
  kLetter = 1,
  kNumber = 2,
  kSpace = 4,
  kNfcInert = 8,
};

// The table, indexed by code point (0..0x10FFFF). Built on first use; thread-safe.
const uint8_t* class_table();

inline uint8_t classes(char32_t cp) { return cp < 0x110000 ? class_table()[cp] : 0; }

}  // namespace qwenvl::unicode
