#pragma once
// Added tokens (tokenizer.json "added_tokens"): found in the text before the model sees it, as
// HF tokenizers' AddedVocabulary does — leftmost match first, the longest among those starting
// there, with the single_word / lstrip / rstrip rules of AddedVocabulary::find_matches.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qwenvl {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A piece of the text: plain text (id < 0) or one added token spanning [begin, end).
struct TextSegment {
  size_t begin, end;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `patterns[i]` is the text that finds `tokens[i]` (its content, or its normalized content).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);

  bool empty() const { return tokens_.empty(); }
  // Replaces `out` with the segments that tile `text` (valid UTF-8).
  void split(std::string_view text, std::vector<TextSegment>& out) const;

 private:
  // The longest pattern matching at text[i], or -1.
  int longest_at(std::string_view text, size_t i) const;

  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  std::vector<int> by_first_byte_[256];  // pattern indices, longest first
};

}  // namespace qwenvl
