#include "text/utf8.h"

#include <gtest/gtest.h>

namespace qwenvl {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

// Expected values are Python's bytes.decode("utf-8", "replace") of the same bytes.
TEST(Utf8, ReplacesMaximalSubpartsLikePython) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"abc", "abc"},
      {"a\x80"
       "b",
       "a" + kFFFD + "b"},
      {"\x80\x81", kFFFD + kFFFD},
      {"\xC3", kFFFD},      // truncated 2-byte
      {"\xE4\xB8", kFFFD},  // truncated 3-byte: one subpart
      {"\xE4\xB8x", kFFFD + "x"},
      {"\xF0\x9F\x98", kFFFD},                              // truncated 4-byte
      {"\xC0\xAF", kFFFD + kFFFD},                          // overlong: C0 never leads
      {"\xE0\x80\xAF", kFFFD + kFFFD + kFFFD},              // E0 needs A0..BF next
      {"\xED\xA0\x80", kFFFD + kFFFD + kFFFD},              // surrogate
      {"\xF4\x90\x80\x80", kFFFD + kFFFD + kFFFD + kFFFD},  // above U+10FFFF
      {"\xF0\x80\x80\xAF", kFFFD + kFFFD + kFFFD + kFFFD},
      {"\xFF\xFE", kFFFD + kFFFD},
      {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},  // a whole emoji stays
      {"\xE4\xB8\xE4\xB8\x96", kFFFD + "\xE4\xB8\x96"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(utf8::make_valid(c.in), c.out) << testing::PrintToString(c.in);
    EXPECT_EQ(utf8::is_valid(c.in), c.in == c.out);
  }
}

TEST(Utf8, IncompleteTailIsOnlyAFixablePrefix) {
  EXPECT_EQ(utf8::incomplete_tail_length(""), 0u);
  EXPECT_EQ(utf8::incomplete_tail_length("abc"), 0u);
  EXPECT_EQ(utf8::incomplete_tail_length("a\xE4"), 1u);
  EXPECT_EQ(utf8::incomplete_tail_length("a\xE4\xB8"), 2u);
  EXPECT_EQ(utf8::incomplete_tail_length("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(utf8::incomplete_tail_length("\xE4\xB8\x96"), 0u);  // complete
  EXPECT_EQ(utf8::incomplete_tail_length("\x80"), 0u);          // no lead byte: hopeless
  EXPECT_EQ(utf8::incomplete_tail_length("\xED\xA0"), 0u);      // a surrogate never completes
  EXPECT_EQ(utf8::incomplete_tail_length("\xFF"), 0u);
  EXPECT_EQ(utf8::incomplete_tail_length("\xF0\x9F\x98\x80\xF0"), 1u);
}

TEST(Utf8, AppendEncodesEveryLength) {
  std::string s;
  for (char32_t cp : {char32_t(0x41), char32_t(0xE9), char32_t(0x4E16), char32_t(0x1F600)})
    utf8::append(s, cp);
  EXPECT_EQ(s, "A\xC3\xA9\xE4\xB8\x96\xF0\x9F\x98\x80");
}

}  // namespace
}  // namespace qwenvl
