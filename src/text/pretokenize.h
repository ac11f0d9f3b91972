#pragma once
// Qwen2's pre-tokenizer: tokenizer.json's Split(pattern=kQwen2SplitPattern, behavior=Isolated)
// as HF tokenizers runs it through Oniguruma, written out as a matcher over code points instead
// of a regex engine. Every position of a non-empty text starts some alternative, so the pieces
// tile the text.
#include <cstddef>
#include <string_view>

namespace qwenvl {

inline constexpr std::string_view kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// End (byte offset) of the piece starting at `begin` < text.size(); `text` must be valid UTF-8.
size_t qwen2_piece_end(std::string_view text, size_t begin);

}  // namespace qwenvl
