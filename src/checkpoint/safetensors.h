#pragma once
// The safetensors format: 8 bytes little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data buffer that the offsets index. Parsing validates everything against the file size
// so that a truncated or hostile file gives an Error, never an out-of-bounds read.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/mapped_file.h"
#include "core/tensor.h"

namespace qwenvl {

struct SafetensorsEntry {
  std::string name;  // as written in the file
  DType dtype;       // BF16, F16 or F32: the only ones a Qwen2.5-VL checkpoint holds
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data buffer
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // in header order
  uint64_t data_offset = 0;               // where the data buffer starts: 8 + N
};

// The header spec of the reference implementation caps N at 100 MB; a bigger one is corrupt.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Parses and validates the header of a safetensors file held in bytes[0, size). `file_name` is for
// messages. Throws Error on anything malformed; never reads outside the given bytes.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size,
                                           const std::string& file_name);

// A mapped safetensors file with its parsed header.
struct SafetensorsFile {
  std::shared_ptr<MappedFile> file;
  SafetensorsHeader header;

  static SafetensorsFile open(const std::string& path);
  // A CPU tensor viewing the entry's bytes; it keeps the mapping alive.
  Tensor view(const SafetensorsEntry& entry) const;
};

}  // namespace qwenvl
