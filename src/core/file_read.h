#pragma once
// Reading whole files that a user names, safely: only regular files are opened for reading (a
// FIFO, a device or a directory is refused before anything blocks on it), and a file is read
// whole only up to a cap chosen per kind of file, so a wrong path cannot hang qwenvl or fill its
// memory. Errors name the file and say what it was expected to be.
#include <cstdint>
#include <string>
#include <vector>

namespace qwenvl {

// Caps on what is read whole (README "Limits"). Checkpoints are memory-mapped, not read, and
// images keep their own cap (vision/image.h).
inline constexpr int64_t kMaxJsonFileBytes = 64ll << 20;  // config, index, generation, preprocessor
inline constexpr int64_t kMaxTokenizerFileBytes = 256ll << 20;  // tokenizer.json (Qwen's: 11 MB)
inline constexpr int64_t kMaxPromptFileBytes = 16ll << 20;      // --prompt-file, tokenize --file

// Opens `path` without blocking (O_NONBLOCK), refuses anything but a regular file, and returns its
// file descriptor (the caller closes it) and size. `what` names the file in errors ("image",
// "tokenizer file", ...).
struct RegularFile {
  int fd = -1;
  int64_t size = 0;
};
RegularFile open_regular_file(const std::string& path, const std::string& what);

// The whole content of the regular file `path`; an Error if it is larger than `max_bytes`.
std::string read_text_file(const std::string& path, int64_t max_bytes, const std::string& what);
std::vector<uint8_t> read_binary_file(const std::string& path, int64_t max_bytes,
                                      const std::string& what);

// Standard input up to `max_bytes` (for "-" arguments); an Error beyond.
std::string read_stdin(int64_t max_bytes, const std::string& what);

}  // namespace qwenvl
