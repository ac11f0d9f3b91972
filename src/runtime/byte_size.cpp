#include "runtime/byte_size.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace qwenvl {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Bytes per unit, 0 for an unknown one.
double unit_bytes(const std::string& unit) {
  struct Unit {
    const char* name;
    double bytes;
  };
  static constexpr Unit kUnits[] = {
      {"", 1.0},       {"b", 1.0},      {"k", 1e3},      {"kb", 1e3},     {"m", 1e6},
      {"mb", 1e6},     {"g", 1e9},      {"gb", 1e9},     {"t", 1e12},     {"tb", 1e12},
      {"ki", 1024.0},  {"kib", 1024.0}, {"mi", 0x1p20},  {"mib", 0x1p20}, {"gi", 0x1p30},
      {"gib", 0x1p30}, {"ti", 0x1p40},  {"tib", 0x1p40},
  };
  const std::string u = lower(unit);
  for (const Unit& k : kUnits)
    if (u == k.name) return k.bytes;
  return 0.0;
}

}  // namespace

int64_t parse_byte_size(const std::string& text, const std::string& what) {
  if (text.empty()) fail(what, ": expected a size such as 20GiB, got nothing");
  // Digits and one decimal point only: strtod would also take "inf", "nan", hex and exponents.
  size_t end = 0;
  bool digits = false, point = false;
  for (; end < text.size(); ++end) {
    const char c = text[end];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits = true;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (!digits) {
    if (text[0] == '-') fail(what, ": a size cannot be negative, got '", text, "'");
    fail(what, ": expected a size such as 20GiB, got '", text, "'");
  }
  size_t unit_begin = end;
  while (unit_begin < text.size() && text[unit_begin] == ' ') ++unit_begin;
  const std::string unit = text.substr(unit_begin);
  for (char c : unit)
    if (!std::isalpha(static_cast<unsigned char>(c)))
      fail(what, ": unexpected '", unit, "' after the number in '", text, "'");
  const double scale = unit_bytes(unit);
  if (scale == 0.0)
    fail(what, ": unknown unit '", unit, "' in '", text,
         "' (use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)");
  if (point && unit.empty())
    fail(what, ": a fraction needs a unit (bytes are whole), got '", text, "'");
  const auto too_large = [&] { fail(what, ": '", text, "' is too large (at most 8 EiB)"); };
  if (!point) {  // exact in integers: "9223372036854775807" must not pass through a double
    int64_t n = 0;
    for (size_t i = 0; i < end; ++i)
      if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, text[i] - '0', &n))
        too_large();
    if (__builtin_mul_overflow(n, int64_t(scale), &n)) too_large();
    return n;
  }
  const double value = std::strtod(text.substr(0, end).c_str(), nullptr) * scale;
  // 2^63 is the first double past int64's range.
  if (!std::isfinite(value) || value >= 0x1p63) too_large();
  return int64_t(value);
}

std::string format_bytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024 && bytes > -1024) return cat(bytes, " B");
  double v = double(bytes);
  int unit = -1;
  while ((v >= 1024.0 || v <= -1024.0) && unit + 1 < 6) {
    v /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

std::string format_count(int64_t n) {
  const std::string digits = std::to_string(n < 0 ? -(n + 1) + uint64_t(1) : uint64_t(n));
  std::string out = n < 0 ? "-" : "";
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace qwenvl
