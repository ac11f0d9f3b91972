#pragma once
// Byte counts as people write them in flags ("20GiB", "512MB", "1.5GiB", "123") and as qwenvl
// prints them ("20.0 GiB").
#include <cstdint>
#include <string>

namespace qwenvl {

// `text` as a number of bytes: a non-negative decimal number (a fraction only with a unit),
// optionally followed by a unit, case-insensitive, with or without its final "B": K/KB (1e3),
// M/MB, G/GB, T/TB, and KiB, MiB, GiB, TiB (powers of 1024); no unit means bytes. Spaces between
// the number and the unit are allowed. An Error naming `what` (e.g. "--max-memory for cuda:0")
// for an empty text, a negative number, NaN or infinity, an unknown unit, trailing text, or a
// value past int64's range. A fraction of a byte is rounded down.
int64_t parse_byte_size(const std::string& text, const std::string& what);

// `bytes` with one decimal in the largest binary unit that keeps the number at least 1:
// "20.0 GiB", "512.0 MiB", "123 B".
std::string format_bytes(int64_t bytes);

// `n` with thousands separated by commas: "12,845,056".
std::string format_count(int64_t n);

}  // namespace qwenvl
