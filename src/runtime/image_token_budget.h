#pragma once
// A request's images and videos under one budget of merged tokens: when their sizes (each within
// its own bounds) need more, every image and every video frame is downscaled by the same factor of
// its pixels, as one smaller max_pixels each (for a video, a smaller per-frame limit, as a smaller
// total_pixels would give); the budget is shared in proportion to pixels, a video's being all its
// frames'.
#include <cstdint>
#include <string>
#include <vector>

#include "vision/preprocess.h"
#include "vision/video.h"

namespace qwenvl {

struct ImageBounds {
  std::string name;           // for messages
  int height = 0, width = 0;  // as decoded (orientation applied)
  int64_t min_pixels = 0, max_pixels = 0;
};

// An image, or a video's frames, as the budget leaves it.
struct FittedImage {
  // The bound to resize with: the image's own, or a smaller one. A video: per frame, to give
  // limit_video_frame_pixels when `downscaled`.
  int64_t max_pixels = 0;
  int height = 0, width = 0;  // after smart_resize (a video: each frame)
  int64_t tokens = 0;         // merged tokens (a video: of all its temporal patches)
  bool downscaled = false;    // by the budget, below what its own bounds give
};

struct FittedRequest {
  std::vector<FittedImage> images, videos;
};

// Each image's and video's size and merged tokens ((height / patch) · (width / patch) / merge²,
// times a video's temporal patches) under the budget (0: none). Error when the images and
// videos at their min_pixels sizes already exceed it.
FittedRequest fit_image_token_budget(const std::vector<ImageBounds>& images,
                                     const std::vector<VideoPlan>& videos,
                                     const PreprocessConfig& config, int64_t budget);

}  // namespace qwenvl
