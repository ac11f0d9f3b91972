#pragma once
// Reads the NumPy .npy files that tools/make_reference.py writes (format 1.0/2.0, little-endian,
// C order). Header-only: every test binary includes it.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace qwenvl::test {

struct Npy {
  std::string descr;  // "<f4", "<i4", "<i8", "|u1"
  std::vector<int64_t> shape;
  std::vector<char> bytes;
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  template <typename T>
  std::vector<T> as() const {
    std::vector<T> out(bytes.size() / sizeof(T));
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
    return out;
  }
  // Any integer array as int64 (position ids).
  std::vector<int64_t> as_int64() const {
    std::vector<int64_t> out(static_cast<size_t>(numel()));
    for (size_t i = 0; i < out.size(); ++i) {
      const char* p = bytes.data();
      if (descr == "<i8")
        out[i] = reinterpret_cast<const int64_t*>(p)[i];
      else if (descr == "<i4")
        out[i] = reinterpret_cast<const int32_t*>(p)[i];
      else
        throw std::runtime_error("npy: not an integer array: " + descr);
    }
    return out;
  }
  // Any integer or float array as doubles, for comparisons.
  std::vector<double> as_double() const {
    std::vector<double> out(static_cast<size_t>(numel()));
    for (size_t i = 0; i < out.size(); ++i) {
      const char* p = bytes.data();
      if (descr == "<f4")
        out[i] = reinterpret_cast<const float*>(p)[i];
      else if (descr == "<f8")
        out[i] = reinterpret_cast<const double*>(p)[i];
      else if (descr == "<i4")
        out[i] = reinterpret_cast<const int32_t*>(p)[i];
      else if (descr == "<i8")
        out[i] = double(reinterpret_cast<const int64_t*>(p)[i]);
      else if (descr == "|u1")
        out[i] = reinterpret_cast<const uint8_t*>(p)[i];
      else
        throw std::runtime_error("npy: unsupported dtype " + descr);
    }
    return out;
  }
};

inline Npy read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("npy: cannot open " + path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw std::runtime_error("npy: not an npy file: " + path);
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t n;
    in.read(reinterpret_cast<char*>(&n), 2);
    header_len = n;
  } else {
    in.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  Npy npy;
  auto field = [&](const std::string& key) {
    auto pos = header.find("'" + key + "'");
    if (pos == std::string::npos) throw std::runtime_error("npy: no " + key + " in " + path);
    return header.substr(header.find(':', pos) + 1);
  };
  std::string d = field("descr");
  auto q1 = d.find('\''), q2 = d.find('\'', q1 + 1);
  npy.descr = d.substr(q1 + 1, q2 - q1 - 1);
  if (field("fortran_order").find("True") < field("fortran_order").find(','))
    throw std::runtime_error("npy: fortran order not supported: " + path);
  std::string s = field("shape");
  s = s.substr(s.find('(') + 1, s.find(')') - s.find('(') - 1);
  size_t pos = 0;
  while (pos < s.size()) {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == ',')) ++pos;
    if (pos >= s.size()) break;
    size_t end = pos;
    while (end < s.size() && s[end] != ',') ++end;
    npy.shape.push_back(std::stoll(s.substr(pos, end - pos)));
    pos = end;
  }
  size_t item = npy.descr == "|u1" ? 1 : size_t(npy.descr.back() - '0');
  npy.bytes.resize(size_t(npy.numel()) * item);
  in.read(npy.bytes.data(), std::streamsize(npy.bytes.size()));
  if (!in) throw std::runtime_error("npy: truncated " + path);
  return npy;
}

}  // namespace qwenvl::test
