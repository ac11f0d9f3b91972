#include "checkpoint/safetensors.h"

#include <algorithm>
#include <string_view>

#include "checkpoint/json_fields.h"
#include "core/error.h"

namespace qwenvl {

namespace {

using json = nlohmann::json;

DType weight_dtype(const std::string& name, const std::string& file, const std::string& dtype) {
  if (dtype == "BF16") return DType::BF16;
  if (dtype == "F16") return DType::F16;
  if (dtype == "F32") return DType::F32;
  if (dtype == "I32") return DType::I32;  // AWQ's packed qweight and qzeros
  fail("tensor ", name, " in ", file, " has dtype ", dtype,
       "; qwenvl reads BF16, F16 and F32 weights and AWQ's I32 tensors only");
}

// Reads one [begin, end] pair or a shape as non-negative integers; Error naming the tensor.
std::vector<uint64_t> unsigned_list(const json& obj, const char* key, const std::string& name,
                                    const std::string& file) {
  auto it = obj.find(key);
  if (it == obj.end()) fail("tensor ", name, " in ", file, " has no '", key, "'");
  if (!it->is_array()) fail("tensor ", name, " in ", file, ": '", key, "' is not a list");
  std::vector<uint64_t> out;
  for (const auto& v : *it) {
    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
      fail("tensor ", name, " in ", file, ": '", key, "' holds ", v.dump(),
           ", not a non-negative integer");
    out.push_back(v.get<uint64_t>());
  }
  return out;
}

SafetensorsEntry parse_entry(const std::string& name, const json& info, const std::string& file,
                             uint64_t data_size) {
  if (name.empty()) fail(file, " holds a tensor with an empty name");
  if (!info.is_object())
    fail("tensor ", name, " in ", file, ": entry should be an object, found ", info.type_name());
  SafetensorsEntry e;
  e.name = name;
  auto dtype = info.find("dtype");
  if (dtype == info.end() || !dtype->is_string())
    fail("tensor ", name, " in ", file, " has no string 'dtype'");
  e.dtype = weight_dtype(name, file, dtype->get<std::string>());

  std::vector<uint64_t> dims = unsigned_list(info, "shape", name, file);
  if (dims.size() > size_t(Shape::kMaxRank))
    fail("tensor ", name, " in ", file, " has ", dims.size(), " dimensions; at most ",
         Shape::kMaxRank, " are supported");
  // Multiply with an overflow guard: any product past the data size is already a mismatch.
  unsigned __int128 numel = 1;
  for (uint64_t d : dims) {
    numel *= d;
    if (numel > (unsigned __int128)data_size + 1) numel = (unsigned __int128)data_size + 1;
    e.shape.push_back(int64_t(std::min<uint64_t>(d, uint64_t(INT64_MAX))));
  }
  std::vector<uint64_t> offsets = unsigned_list(info, "data_offsets", name, file);
  if (offsets.size() != 2)
    fail("tensor ", name, " in ", file, ": 'data_offsets' should be [begin, end]");
  e.begin = offsets[0];
  e.end = offsets[1];
  if (e.end < e.begin)
    fail("tensor ", name, " in ", file, ": data_offsets [", e.begin, ", ", e.end,
         "] end before begin");
  if (e.end > data_size)
    fail("tensor ", name, " in ", file, ": data_offsets [", e.begin, ", ", e.end,
         "] run past the data (", data_size, " bytes; the file is truncated or corrupt)");
  unsigned __int128 expected = numel * dtype_size(e.dtype);
  if (expected != (unsigned __int128)(e.end - e.begin))
    fail("tensor ", name, " in ", file, ": shape ", e.shape.str(), " of ", dtype_name(e.dtype),
         " needs a different byte count than data_offsets [", e.begin, ", ", e.end, "] give");
  return e;
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, size_t size,
                                           const std::string& file_name) {
  if (size < 8)
    fail(file_name, " is too short to be a safetensors file (", size, " bytes, need at least 8)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | bytes[i];
  if (n > kMaxSafetensorsHeaderBytes)
    fail(file_name, " declares a ", n,
         "-byte header, more than safetensors allows; not a "
         "safetensors file or corrupt");
  if (n > size - 8)
    fail(file_name, " declares a ", n, "-byte header but holds only ", size - 8,
         " bytes after the length (truncated?)");
  SafetensorsHeader header;
  header.data_offset = 8 + n;
  uint64_t data_size = size - header.data_offset;

  std::string text(reinterpret_cast<const char*>(bytes + 8), size_t(n));
  json root = json_fields::parse_json(text, "the header of " + file_name);
  if (!root.is_object())
    fail("the header of ", file_name, " should be a JSON object, found ", root.type_name());
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object() && !it->is_null())
        fail(file_name, ": __metadata__ should be an object, found ", it->type_name());
      continue;
    }
    header.tensors.push_back(parse_entry(it.key(), it.value(), file_name, data_size));
  }

  // No two tensors may share bytes: a writer bug that would silently alias weights.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : header.tensors)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i]->begin < by_offset[i - 1]->end)
      fail("tensors ", by_offset[i - 1]->name, " and ", by_offset[i]->name, " in ", file_name,
           " overlap (data_offsets [", by_offset[i - 1]->begin, ", ", by_offset[i - 1]->end,
           "] and [", by_offset[i]->begin, ", ", by_offset[i]->end, "])");
  return header;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file = MappedFile::open(path);
  f.header = parse_safetensors_header(f.file->data(), f.file->size(), path);
  return f;
}

Tensor SafetensorsFile::view(const SafetensorsEntry& entry) const {
  // Read-only mapping: the pointer is writable in type only; nothing writes weights in place.
  auto* p = const_cast<uint8_t*>(file->data() + header.data_offset + entry.begin);
  return Tensor(p, entry.dtype, entry.shape, Device::CPU, file);
}

}  // namespace qwenvl
