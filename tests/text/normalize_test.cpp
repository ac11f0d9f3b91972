#include "text/normalize.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <random>

#include "text/utf8.h"

namespace qwenvl {
namespace {

// utf8proc's NFC of the whole string: what nfc() must equal while only normalizing stretches.
std::string whole_nfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), utf8proc_ssize_t(s.size()),
                   &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::string r(reinterpret_cast<const char*>(out), size_t(n));
  std::free(out);
  return r;
}

TEST(Nfc, KnownCompositions) {
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                                 // e + acute -> é
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo -> 각
  EXPECT_EQ(nfc("\xEA\xB0\x80\xE1\x86\xA8"), "\xEA\xB0\x81");              // 가 + jamo T -> 각
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");                              // ANGSTROM SIGN -> Å
  EXPECT_EQ(nfc("a\xCC\x81\xCC\x96"), "\xC3\xA1\xCC\x96");  // reordered, then composed
  EXPECT_TRUE(nfc_unchanged("plain ascii, caf\xC3\xA9, \xE4\xB8\x96\xE7\x95\x8C"));
  EXPECT_FALSE(nfc_unchanged("e\xCC\x81"));
}

TEST(Nfc, StretchwiseEqualsWholeStringOnRandomText) {
  // Starters, combining marks of several classes, jamo, singletons, composites, CJK, emoji.
  const char32_t alphabet[] = {'a',    'e',    'o',    ' ',     'A',    0x0301, 0x0316, 0x0323,
                               0x0302, 0x0308, 0x1100, 0x1161,  0x11A8, 0xAC00, 0x212B, 0x2126,
                               0x00E9, 0x1E63, 0x4E16, 0x1F600, 0x0915, 0x093C, 0x094D, 0x3099,
                               0x304B, 0x0B47, 0x0B3E, 0x0344,  0x0F73, 0x05B8};
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 3000; ++round) {
    std::string s;
    int n = 1 + int(rng() % 24);
    for (int i = 0; i < n; ++i) utf8::append(s, alphabet[rng() % std::size(alphabet)]);
    ASSERT_EQ(nfc(s), whole_nfc(s)) << testing::PrintToString(s);
    if (nfc_unchanged(s)) {
      ASSERT_EQ(whole_nfc(s), s) << testing::PrintToString(s);
    }
  }
}

}  // namespace
}  // namespace qwenvl
