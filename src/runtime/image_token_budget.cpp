#include "runtime/image_token_budget.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"

namespace qwenvl {

namespace {

// An image or a video, as the search sees it: its size at a given (per-frame) max_pixels.
struct Item {
  FittedImage own;           // at its own bounds
  int64_t floor_pixels = 0;  // the limit the budget may not go below: its min_pixels
  std::function<FittedImage(int64_t max_pixels)> at;
};

int64_t total_tokens(const std::vector<FittedImage>& fitted) {
  int64_t total = 0;
  for (const FittedImage& f : fitted) total += f.tokens;
  return total;
}

int64_t merged_tokens(int height, int width, const PreprocessConfig& c) {
  return int64_t(height / c.patch_size) * (width / c.patch_size) /
         (int64_t(c.merge_size) * c.merge_size);
}

Item image_item(const ImageBounds& b, const PreprocessConfig& c) {
  Item item;
  item.floor_pixels = b.min_pixels;
  item.at = [b, c](int64_t max_pixels) {
    FittedImage f;
    f.max_pixels = std::max(max_pixels, b.min_pixels);
    const auto [height, width] =
        smart_resize(b.height, b.width, c.patch_size * c.merge_size, b.min_pixels, f.max_pixels);
    f.height = height;
    f.width = width;
    f.tokens = merged_tokens(height, width, c);
    return f;
  };
  item.own = item.at(b.max_pixels);
  return item;
}

Item video_item(const VideoPlan& plan, const PreprocessConfig& c) {
  Item item;
  item.own.max_pixels = plan.sampling.max_pixels;
  item.own.height = plan.sampling.resized_height;
  item.own.width = plan.sampling.resized_width;
  item.own.tokens = plan.tokens(c);
  item.floor_pixels = video_min_frame_pixels(plan);
  const int64_t t = c.temporal_patch_size;
  const int64_t grid_t = (int64_t(plan.sampling.indices.size()) + t - 1) / t;
  const FittedImage own = item.own;
  item.at = [&plan, c, grid_t, own](int64_t max_pixels) {
    // A limit at or above the frames' own pixels leaves them as they are (their own limit may be
    // below min_pixels: --video-max-pixels alone).
    if (max_pixels >= int64_t(own.height) * own.width) return own;
    FittedImage f;
    f.max_pixels = max_pixels;
    const auto [height, width] = video_frame_size(plan, max_pixels, c);
    f.height = height;
    f.width = width;
    f.tokens = grid_t * merged_tokens(height, width, c);
    return f;
  };
  return item;
}

}  // namespace

FittedRequest fit_image_token_budget(const std::vector<ImageBounds>& images,
                                     const std::vector<VideoPlan>& videos,
                                     const PreprocessConfig& config, int64_t budget) {
  std::vector<Item> items;
  for (const ImageBounds& b : images) items.push_back(image_item(b, config));
  for (const VideoPlan& plan : videos) items.push_back(video_item(plan, config));
  auto split = [&](std::vector<FittedImage> all) {
    FittedRequest out;
    out.images.assign(all.begin(), all.begin() + long(images.size()));
    out.videos.assign(all.begin() + long(images.size()), all.end());
    return out;
  };
  std::vector<FittedImage> own;
  for (const Item& item : items) own.push_back(item.own);
  if (budget <= 0 || total_tokens(own) <= budget) return split(own);

  // The pixels each item (a video: each frame) has at its own bounds; a scale s gives it s times
  // as many, never fewer than its min_pixels.
  auto at_scale = [&](double s) {
    std::vector<FittedImage> out;
    for (const Item& item : items) {
      const double pixels = double(item.own.height) * item.own.width;
      out.push_back(item.at(std::max(int64_t(std::floor(s * pixels)), item.floor_pixels)));
    }
    return out;
  };
  const std::vector<FittedImage> smallest = at_scale(0.0);
  if (total_tokens(smallest) > budget) {
    if (videos.empty())
      fail("the request's images need ", total_tokens(smallest),
           " tokens even at their min_pixels, over the budget of ", budget,
           " image tokens: send fewer or smaller images, or lower min_pixels");
    fail("the request's images and videos need ", total_tokens(smallest),
         " tokens even at their min_pixels, over the budget of ", budget,
         " image tokens: sample fewer frames (--fps, --nframes, --video-start/--video-end), "
         "lower the videos' min_pixels (--video-min-pixels), send fewer images or videos, or "
         "raise --max-image-tokens");
  }
  // Tokens grow with the scale: the largest scale whose items fit, to a part in 2^40.
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 40; ++i) {
    const double mid = (lo + hi) / 2;
    (total_tokens(at_scale(mid)) <= budget ? lo : hi) = mid;
  }
  std::vector<FittedImage> out = at_scale(lo);
  for (size_t i = 0; i < out.size(); ++i) out[i].downscaled = out[i].tokens < own[i].tokens;
  return split(out);
}

}  // namespace qwenvl
