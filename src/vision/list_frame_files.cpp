// list_frame_files: the frames of a directory video, by name.
#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "vision/video.h"

namespace qwenvl {

std::vector<std::string> list_frame_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) fail("cannot list the video frames in ", dir, ": ", ec.message());
  std::vector<std::string> files;
  for (const fs::directory_entry& entry : it) {
    if (!entry.is_regular_file(ec)) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    if (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".webp" || ext == ".bmp")
      files.push_back(entry.path().string());
    if (int64_t(files.size()) > kMaxDirectoryFrames)
      fail("the video directory ", dir, " has more than ", kMaxDirectoryFrames,
           " frame images; sample them first");
  }
  if (files.empty())
    fail("the video directory ", dir, " has no frame images (.jpg, .jpeg, .png, .webp, .bmp)");
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace qwenvl
