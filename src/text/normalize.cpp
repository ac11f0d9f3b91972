#include "text/normalize.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "text/unicode_classes.h"
#include "text/utf8.h"

namespace qwenvl {

namespace {

inline size_t char_length(unsigned char lead) {
  return lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
}

inline bool inert_at(const unsigned char* p, size_t len, const uint8_t* table) {
  return len == 1 || (table[utf8::decode_valid(p, len)] & unicode::kNfcInert);
}

void append_nfc(std::string& out, std::string_view region) {
  utf8proc_uint8_t* mapped = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(region.data()),
                                    utf8proc_ssize_t(region.size()), &mapped,
                                    utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(mapped, &std::free);
  if (n < 0) fail("NFC normalization failed: ", utf8proc_errmsg(n));
  out.append(reinterpret_cast<const char*>(mapped), size_t(n));
}

}  // namespace

bool nfc_unchanged(std::string_view text) {
  auto p = reinterpret_cast<const unsigned char*>(text.data());
  const uint8_t* table = nullptr;
  for (size_t i = 0, n = text.size(); i < n;) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    if (!table) table = unicode::class_table();
    size_t len = char_length(p[i]);
    if (!inert_at(p + i, len, table)) return false;
    i += len;
  }
  return true;
}

// NFC never acts across the boundary before an inert character (canonical class 0, not a
// possible second half of a composition, unchanged by NFC), so only the stretches from the
// inert character before a non-inert one up to the next inert character go through utf8proc;
// the rest is copied.
std::string nfc(std::string_view text) {
  auto p = reinterpret_cast<const unsigned char*>(text.data());
  const uint8_t* table = unicode::class_table();
  std::string out;
  out.reserve(text.size() + 16);
  size_t copied = 0, prev_start = 0, i = 0, n = text.size();
  bool have_prev = false;
  while (i < n) {
    size_t len = char_length(p[i]);
    if (inert_at(p + i, len, table)) {
      prev_start = i;
      have_prev = true;
      i += len;
      continue;
    }
    size_t region_start = have_prev ? prev_start : i;
    size_t region_end = i + len;
    while (region_end < n) {
      size_t l = char_length(p[region_end]);
      if (inert_at(p + region_end, l, table)) break;
      region_end += l;
    }
    out.append(text.data() + copied, region_start - copied);
    append_nfc(out, text.substr(region_start, region_end - region_start));
    copied = i = region_end;
    have_prev = false;
  }
  out.append(text.data() + copied, n - copied);
  return out;
}

}  // namespace qwenvl
