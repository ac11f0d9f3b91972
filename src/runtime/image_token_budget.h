#pragma once
// A request's images under one budget of merged tokens: when their sizes (each within its own
// min/max pixels) need more, every image is downscaled by the same factor of its pixels, as one
// smaller max_pixels each; the budget is shared in proportion to the images' pixels.
#include <cstdint>
#include <string>
#include <vector>

namespace qwenvl {

struct ImageBounds {
  std::string name;           // for messages
  int height = 0, width = 0;  // as decoded (orientation applied)
  int64_t min_pixels = 0, max_pixels = 0;
};

struct FittedImage {
  int64_t max_pixels = 0;     // the bound to resize with: the image's own, or a smaller one
  int height = 0, width = 0;  // after smart_resize
  int64_t tokens = 0;         // merged tokens
  bool downscaled = false;    // by the budget, below what its own max_pixels gives
};

// Each image's size and merged tokens ((height / patch) · (width / patch) / merge²) under the
// budget (0: none). Error when the images at their min_pixels sizes already exceed it.
std::vector<FittedImage> fit_image_token_budget(const std::vector<ImageBounds>& images,
                                                int patch_size, int merge_size, int64_t budget);

}  // namespace qwenvl
