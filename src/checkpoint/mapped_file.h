#pragma once
// A whole file memory-mapped read-only. Tensors view these bytes directly, so a 70 GB checkpoint
// costs no reading until a weight is touched (the kernel pages it in on first access).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace qwenvl {

class MappedFile {
 public:
  // Error naming the path if it cannot be opened, is not a regular file, or cannot be mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the whole pages inside [p, p + bytes) from resident memory: the caller copied them and
  // will not read them again (a later read would page them in from the file again).
  static void release(const void* p, size_t bytes);

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace qwenvl
