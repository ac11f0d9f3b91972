#include "text/unicode_classes.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace qwenvl::unicode {

namespace {

constexpr char32_t kCodePoints = 0x110000;

// Unicode's White_Space property (PropList.txt), which is what `\s` means for Oniguruma (the
// regex engine of HF tokenizers' Split) and for Rust's regex crate. It differs from Python's
// str.isspace(), which adds U+001C..U+001F.
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool has_canonical_decomposition(const utf8proc_property_t* p) {
  return p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0;
}

// NFC of a lone code point, through utf8proc (used only while building the table).
bool nfc_keeps(char32_t cp) {
  utf8proc_uint8_t in[4];
  utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_int32_t(cp), in);
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t m =
      utf8proc_map(in, n, &out, utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  bool same = m == n && std::memcmp(in, out, size_t(n)) == 0;
  std::free(out);
  return same;
}

std::vector<uint8_t> build() {
  std::vector<uint8_t> table(kCodePoints, 0);
  std::vector<bool> may_follow_in_composition(kCodePoints, false);
  for (char32_t cp = 0; cp < kCodePoints; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(cp));
    if (!has_canonical_decomposition(p) || !nfc_keeps(cp)) continue;
    // A primary composite: every character after the first of its full decomposition may
    // combine with what precedes it (a superset of the characters NFC_Quick_Check calls Maybe).
    utf8proc_int32_t parts[8];
    utf8proc_int32_t boundclass = 0;
    utf8proc_ssize_t n =
        utf8proc_decompose_char(utf8proc_int32_t(cp), parts, 8, UTF8PROC_DECOMPOSE, &boundclass);
    for (utf8proc_ssize_t k = 1; k < n && k < 8; ++k)
      may_follow_in_composition[char32_t(parts[k])] = true;
  }
  // Hangul LV and LVT syllables compose algorithmically with the following V and T jamo.
  for (char32_t cp = 0x1161; cp <= 0x1175; ++cp) may_follow_in_composition[cp] = true;
  for (char32_t cp = 0x11A8; cp <= 0x11C2; ++cp) may_follow_in_composition[cp] = true;

  for (char32_t cp = 0; cp < kCodePoints; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(cp));
    uint8_t bits = 0;
    if (p->category >= UTF8PROC_CATEGORY_LU && p->category <= UTF8PROC_CATEGORY_LO) bits |= kLetter;
    if (p->category >= UTF8PROC_CATEGORY_ND && p->category <= UTF8PROC_CATEGORY_NO) bits |= kNumber;
    if (is_white_space(cp)) bits |= kSpace;
    bool inert = p->combining_class == 0 && !may_follow_in_composition[cp] &&
                 (!has_canonical_decomposition(p) || nfc_keeps(cp));
    if (inert) bits |= kNfcInert;
    table[cp] = bits;
  }
  return table;
}

}  // namespace

const uint8_t* class_table() {
  static const std::vector<uint8_t> table = build();
  return table.data();
}

}  // namespace qwenvl::unicode
