#pragma once
// The NFC normalizer of tokenizer.json (HF tokenizers' normalizers::NFC), through utf8proc, with
// a scan that skips texts NFC would leave unchanged (almost all of them).
#include <string>
#include <string_view>

namespace qwenvl {

// True when NFC(text) == text is certain without normalizing; `text` is valid UTF-8.
bool nfc_unchanged(std::string_view text);

// NFC of valid UTF-8 text.
std::string nfc(std::string_view text);

}  // namespace qwenvl
