#include "text/pretokenize.h"

#include "text/unicode_classes.h"
#include "text/utf8.h"

namespace qwenvl {

namespace {

// One decoded code point of valid UTF-8 and its classes.
struct Char {
  char32_t cp = 0;
  size_t len = 0;  // bytes; 0 past the end
  uint8_t cls = 0;
  bool letter() const { return cls & unicode::kLetter; }
  bool number() const { return cls & unicode::kNumber; }
  bool space() const { return cls & unicode::kSpace; }
  bool other() const {
    return len && !(cls & (unicode::kLetter | unicode::kNumber | unicode::kSpace));
  }
  bool cr_or_lf() const { return cp == '\r' || cp == '\n'; }
};

// ASCII classes precomputed, so plain English text never touches the big table.
struct AsciiClasses {
  uint8_t cls[128];
  AsciiClasses() {
    for (int c = 0; c < 128; ++c) cls[c] = unicode::classes(char32_t(c));
  }
};

inline Char char_at(std::string_view s, size_t i) {
  static const AsciiClasses ascii;
  Char c;
  if (i >= s.size()) return c;
  auto p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  if (p[0] < 0x80) {
    c.cp = p[0];
    c.len = 1;
    c.cls = ascii.cls[p[0]];
    return c;
  }
  c.len = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : 2;
  c.cp = utf8::decode_valid(p, c.len);
  c.cls = unicode::classes(c.cp);
  return c;
}

size_t skip_letters(std::string_view s, size_t i) {
  for (;;) {
    Char c = char_at(s, i);
    if (!c.letter()) return i;
    i += c.len;
  }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d) after the apostrophe at `i`: the match length or 0. Oniguruma's
// case folding makes 's' also match U+017F LATIN SMALL LETTER LONG S; no other character folds
// to any of these letters.
size_t contraction_length(std::string_view s, size_t i) {
  Char a = char_at(s, i + 1);
  if (!a.len) return 0;
  char32_t x = a.cp == 0x17F ? 's' : (a.cp < 0x80 ? a.cp | 0x20 : 0);
  if (x == 's' || x == 't' || x == 'm' || x == 'd') return 1 + a.len;
  if (x != 'r' && x != 'v' && x != 'l') return 0;
  Char b = char_at(s, i + 1 + a.len);
  char32_t y = b.len == 1 ? b.cp | 0x20 : 0;
  if ((x == 'r' || x == 'v') && y == 'e') return 3;
  if (x == 'l' && y == 'l') return 3;
  return 0;
}

}  // namespace

size_t qwen2_piece_end(std::string_view s, size_t i) {
  Char c = char_at(s, i);
  // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c.cp == '\'') {
    if (size_t n = contraction_length(s, i)) return i + n;
  }
  // 2. [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.letter()) return skip_letters(s, i + c.len);
  if (!c.number() && !c.cr_or_lf()) {
    Char next = char_at(s, i + c.len);
    if (next.letter()) return skip_letters(s, i + c.len + next.len);
  }
  // 3. \p{N}
  if (c.number()) return i + c.len;
  // 4. ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  {
    size_t j = i;
    Char d = c;
    if (c.cp == ' ') {
      j += c.len;
      d = char_at(s, j);
    }
    if (d.other()) {
      while (d.other()) {
        j += d.len;
        d = char_at(s, j);
      }
      while (d.cr_or_lf()) {
        j += d.len;
        d = char_at(s, j);
      }
      return j;
    }
  }
  // Only whitespace is left here: c.space() holds.
  size_t run_end = i, last_start = i, after_last_crlf = 0;
  for (Char d = c; d.space(); d = char_at(s, run_end)) {
    last_start = run_end;
    run_end += d.len;
    if (d.cr_or_lf()) after_last_crlf = run_end;
  }
  // 5. \s*[\r\n]+ : backtracking from the whole run stops after its last CR or LF.
  if (after_last_crlf) return after_last_crlf;
  // 6. \s+(?!\S) : the whole run at the end of the text, else all but its last character.
  if (run_end == s.size()) return run_end;
  if (last_start > i) return last_start;
  // 7. \s+
  return run_end;
}

}  // namespace qwenvl
