#pragma once
// GPT-2's byte-level alphabet (HF tokenizers' bytes_char): each byte is shown as one printable
// character — printable Latin-1 bytes as themselves, the others as U+0100 onwards in byte order.
// tokenizer.json spells vocabulary and merges in these characters; we work on raw bytes.
#include <optional>
#include <string>
#include <string_view>

namespace qwenvl::byte_level {

// The character that stands for byte b.
char32_t char_of_byte(unsigned char b);

// The raw bytes a byte-level string stands for; nullopt when some character of `text` (valid
// UTF-8) is not in the alphabet.
std::optional<std::string> to_bytes(std::string_view text);

// The byte-level spelling of raw bytes ("Ġhello" for " hello").
std::string from_bytes(std::string_view bytes);

}  // namespace qwenvl::byte_level
