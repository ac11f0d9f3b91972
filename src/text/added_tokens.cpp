#include "text/added_tokens.h"

#include <utf8proc.h>

#include <algorithm>

#include "text/unicode_classes.h"
#include "text/utf8.h"

namespace qwenvl {

namespace {

// Rust regex's \w (Unicode word character): Alphabetic, marks, decimal digits, connector
// punctuation and the joiners. Alphabetic is letters, Nl and Other_Alphabetic; the
// Other_Alphabetic characters outside the mark categories are the circled/squared letters.
bool is_word_char(char32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
      (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
    return true;
  auto cat = utf8proc_category(utf8proc_int32_t(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ND) ||
         cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_PC;
}

char32_t first_char(std::string_view s) {
  size_t n = utf8::valid_sequence_length(s, 0);
  return utf8::decode_valid(reinterpret_cast<const unsigned char*>(s.data()), n);
}

char32_t last_char(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return first_char(s.substr(i));
}

bool is_space(char32_t c) { return unicode::classes(c) & unicode::kSpace; }

// Start of the whitespace run that ends `s` (s.size() when there is none).
size_t trailing_space_start(std::string_view s) {
  size_t i = s.size();
  while (i > 0) {
    size_t j = i - 1;
    while (j > 0 && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
    if (!is_space(first_char(s.substr(j)))) break;
    i = j;
  }
  return i;
}

// Length of the whitespace run that starts `s`.
size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t n = utf8::valid_sequence_length(s, i);
    if (!is_space(first_char(s.substr(i)))) break;
    i += n;
  }
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)) {
  for (size_t k = 0; k < patterns_.size(); ++k)
    if (!patterns_[k].empty())
      by_first_byte_[static_cast<unsigned char>(patterns_[k][0])].push_back(int(k));
  for (auto& list : by_first_byte_)
    std::stable_sort(list.begin(), list.end(),
                     [&](int a, int b) { return patterns_[a].size() > patterns_[b].size(); });
}

int AddedTokenMatcher::longest_at(std::string_view text, size_t i) const {
  for (int k : by_first_byte_[static_cast<unsigned char>(text[i])]) {
    const std::string& p = patterns_[size_t(k)];
    if (text.size() - i >= p.size() && text.compare(i, p.size(), p) == 0) return k;
  }
  return -1;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSegment>& out) const {
  out.clear();
  size_t emitted = 0;  // end of what `out` covers
  size_t i = 0;
  while (i < text.size()) {
    int k = by_first_byte_[static_cast<unsigned char>(text[i])].empty() ? -1 : longest_at(text, i);
    if (k < 0) {
      ++i;
      continue;
    }
    const AddedToken& token = tokens_[size_t(k)];
    size_t start = i, stop = i + patterns_[size_t(k)].size();
    // Like the Aho-Corasick iterator HF uses, the search resumes after the match even when
    // the match is discarded or widened below.
    i = stop;
    if (token.single_word) {
      bool word_before = start > 0 && is_word_char(last_char(text.substr(0, start)));
      bool word_after = stop < text.size() && is_word_char(first_char(text.substr(stop)));
      if (word_before || word_after) continue;
    }
    if (start < emitted) continue;  // inside whitespace an rstrip token already took
    if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), emitted);
    if (token.rstrip) stop += leading_space_length(text.substr(stop));
    if (emitted < start) out.push_back(TextSegment{emitted, start, -1});
    out.push_back(TextSegment{start, stop, token.id});
    emitted = stop;
  }
  if (emitted < text.size()) out.push_back(TextSegment{emitted, text.size(), -1});
}

}  // namespace qwenvl
