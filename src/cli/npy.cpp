#include "cli/npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace qwenvl::cli {

void write_npy(const std::string& path, const float* values, const std::vector<int64_t>& shape) {
  std::string dims;  // "n," for one dimension (a Python tuple), "a, b" for more
  size_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) dims += ", ";
    dims += std::to_string(shape[i]);
    count *= size_t(shape[i]);
  }
  if (shape.size() == 1) dims += ",";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail("cannot write ", path, ": ", std::strerror(errno));
  const uint16_t length = uint16_t(header.size());
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  const size_t bytes = count * sizeof(float);
  bool ok = std::fwrite(magic, 1, 8, f) == 8 &&
            std::fwrite(&length, 2, 1, f) == 1 &&  // little-endian hosts only
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(values, 1, bytes, f) == bytes;
  ok = std::fclose(f) == 0 && ok;
  if (!ok) fail("cannot write ", path, " (disk full?)");
}

}  // namespace qwenvl::cli
