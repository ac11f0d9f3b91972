#pragma once
// Reads the reference .npy arrays (<f4, <i8) as doubles / int64s. Stands in for
// tests/common/npy.h, whose Npy::as_double() does not compile with g++ 12 (a most-vexing-parse
// on `std::vector<double> out(size_t(numel()))`); switch back once that is fixed.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace qwenvl::test {

struct NpyArray {
  std::string descr;
  std::vector<int64_t> shape;
  std::vector<char> bytes;

  std::vector<double> as_double() const {
    std::vector<double> out;
    if (descr == "<f4") {
      const size_t n = bytes.size() / 4;
      out.resize(n);
      for (size_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, bytes.data() + 4 * i, 4);
        out[i] = f;
      }
    } else if (descr == "<i8") {
      for (int64_t v : as_int64()) out.push_back(double(v));
    } else {
      throw std::runtime_error("npy: unsupported dtype " + descr);
    }
    return out;
  }
  std::vector<int64_t> as_int64() const {
    if (descr != "<i8") throw std::runtime_error("npy: expected <i8, found " + descr);
    std::vector<int64_t> out(bytes.size() / 8);
    std::memcpy(out.data(), bytes.data(), out.size() * 8);
    return out;
  }
};

inline NpyArray read_npy_array(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("npy: cannot open " + path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error("npy: bad " + path);
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t n = 0;
    in.read(reinterpret_cast<char*>(&n), 2);
    header_len = n;
  } else {
    in.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  NpyArray a;
  const size_t d = header.find("'descr'");
  const size_t q1 = header.find('\'', header.find(':', d) + 1);
  a.descr = header.substr(q1 + 1, header.find('\'', q1 + 1) - q1 - 1);
  const size_t s = header.find('(', header.find("'shape'"));
  const std::string dims = header.substr(s + 1, header.find(')', s) - s - 1);
  int64_t numel = 1;
  for (size_t pos = 0; pos < dims.size();) {
    while (pos < dims.size() && (dims[pos] == ' ' || dims[pos] == ',')) ++pos;
    if (pos >= dims.size()) break;
    size_t end = dims.find(',', pos);
    if (end == std::string::npos) end = dims.size();
    a.shape.push_back(std::stoll(dims.substr(pos, end - pos)));
    numel *= a.shape.back();
    pos = end;
  }
  a.bytes.resize(size_t(numel) * size_t(a.descr.back() - '0'));
  in.read(a.bytes.data(), std::streamsize(a.bytes.size()));
  if (!in) throw std::runtime_error("npy: truncated " + path);
  return a;
}

}  // namespace qwenvl::test
