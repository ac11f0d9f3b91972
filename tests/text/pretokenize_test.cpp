#include "text/pretokenize.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace qwenvl {
namespace {

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size();) {
    size_t end = qwen2_piece_end(text, i);
    EXPECT_GT(end, i);
    out.emplace_back(text.substr(i, end - i));
    i = end;
  }
  return out;
}

using P = std::vector<std::string>;

// Expected pieces are Python `regex`'s findall with the same pattern (a backtracking engine like
// Oniguruma, with \s = White_Space and simple case folding).
TEST(Qwen2Split, MatchesTheRegexOnHandPickedCases) {
  EXPECT_EQ(pieces("Hello world"), (P{"Hello", " world"}));
  EXPECT_EQ(pieces("I'm DON'T it'S we'Re 'll"),
            (P{"I", "'m", " DON", "'T", " it", "'S", " we", "'Re", " '", "ll"}));
  EXPECT_EQ(pieces("  a   b  "), (P{" ", " a", "  ", " b", "  "}));
  EXPECT_EQ(pieces("x\n\n  y"), (P{"x", "\n\n", " ", " y"}));
  EXPECT_EQ(pieces("a  \r\n\t b"), (P{"a", "  \r\n", "\t", " b"}));
  EXPECT_EQ(pieces("123.45 1,000"),
            (P{"1", "2", "3", ".", "4", "5", " ", "1", ",", "0", "0", "0"}));
  EXPECT_EQ(pieces(" !!\n\n?"), (P{" !!\n\n", "?"}));
  EXPECT_EQ(pieces("'hello '\xC5\xBF"), (P{"'hello", " '", "\xC5\xBF"}));
  EXPECT_EQ(pieces("end   "), (P{"end", "   "}));
  EXPECT_EQ(pieces("foo.bar(baz)"), (P{"foo", ".bar", "(baz", ")"}));
  EXPECT_EQ(pieces(" 12"), (P{" ", "1", "2"}));
}

TEST(Qwen2Split, UnicodeLettersSpacesAndLongS) {
  // CJK letters; U+3000 IDEOGRAPHIC SPACE is White_Space and may lead a word.
  EXPECT_EQ(pieces("\xE6\x97\xA5\xE6\x9C\xAC \xE3\x83\x86\xE3\x82\xB9"),
            (P{"\xE6\x97\xA5\xE6\x9C\xAC", " \xE3\x83\x86\xE3\x82\xB9"}));
  EXPECT_EQ(pieces("\xE3\x80\x80\xE6\x97\xA5"), (P{"\xE3\x80\x80\xE6\x97\xA5"}));
  // NBSP runs: \s+(?!\S) leaves the last one to lead the word.
  EXPECT_EQ(pieces("a\xC2\xA0\xC2\xA0"
                   "b"),
            (P{"a", "\xC2\xA0",
               "\xC2\xA0"
               "b"}));
  // U+001C is not White_Space (Python's isspace says it is): it leads the word like punctuation.
  EXPECT_EQ(pieces("x\x1cy"), (P{"x", "\x1cy"}));
  // U+017F LONG S case-folds to 's', so "'\u017f" is a contraction.
  EXPECT_EQ(pieces("it'\xC5\xBF"), (P{"it", "'\xC5\xBF"}));
}

}  // namespace
}  // namespace qwenvl
