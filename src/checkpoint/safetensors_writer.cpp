#include "checkpoint/safetensors_writer.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace qwenvl {

namespace {

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    default:
      fail_internal("write_safetensors: no safetensors dtype for ", dtype_name(dtype));
  }
}

}  // namespace

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", safetensors_dtype(t.dtype())},
                    {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::ofstream out(path, std::ios::binary);
  const uint64_t size = text.size();
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = char(size >> (8 * i) & 0xff);
  out.write(length, 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const auto& [name, t] : tensors)
    out.write(static_cast<const char*>(t.data()), std::streamsize(t.nbytes()));
  if (!out.flush()) fail("cannot write ", path);
}

}  // namespace qwenvl
