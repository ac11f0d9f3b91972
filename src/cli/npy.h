#pragma once
// Float32 arrays as NumPy .npy files (format 1.0), for the subcommands that dump values to
// compare with Python.
#include <cstdint>
#include <string>
#include <vector>

namespace qwenvl::cli {

// values holds the product of `shape` floats, row-major. Throws Error when the file cannot be
// written.
void write_npy(const std::string& path, const float* values, const std::vector<int64_t>& shape);

}  // namespace qwenvl::cli
