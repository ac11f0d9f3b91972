#include "runtime/image_token_budget.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "vision/preprocess.h"

namespace qwenvl {

namespace {

FittedImage fitted(const ImageBounds& b, int patch, int merge, int64_t max_pixels) {
  FittedImage f;
  f.max_pixels = std::max(max_pixels, b.min_pixels);
  const auto [height, width] =
      smart_resize(b.height, b.width, patch * merge, b.min_pixels, f.max_pixels);
  f.height = height;
  f.width = width;
  f.tokens = int64_t(height / patch) * (width / patch) / (int64_t(merge) * merge);
  return f;
}

int64_t total_tokens(const std::vector<FittedImage>& images) {
  int64_t total = 0;
  for (const FittedImage& f : images) total += f.tokens;
  return total;
}

}  // namespace

std::vector<FittedImage> fit_image_token_budget(const std::vector<ImageBounds>& images,
                                                int patch_size, int merge_size, int64_t budget) {
  std::vector<FittedImage> own;
  for (const ImageBounds& b : images)
    own.push_back(fitted(b, patch_size, merge_size, b.max_pixels));
  if (budget <= 0 || total_tokens(own) <= budget) return own;

  // The pixels each image has at its own bounds; a scale s gives image i s times as many.
  auto at_scale = [&](double s) {
    std::vector<FittedImage> out;
    for (size_t i = 0; i < images.size(); ++i) {
      const double pixels = double(own[i].height) * own[i].width;
      out.push_back(fitted(images[i], patch_size, merge_size, int64_t(std::floor(s * pixels))));
    }
    return out;
  };
  const std::vector<FittedImage> smallest = at_scale(0.0);
  if (total_tokens(smallest) > budget)
    fail("the request's images need ", total_tokens(smallest),
         " tokens even at their min_pixels, over the budget of ", budget,
         " image tokens: send fewer or smaller images, or lower min_pixels");
  // Tokens grow with the scale: the largest scale whose images fit, to a part in 2^40.
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 40; ++i) {
    const double mid = (lo + hi) / 2;
    (total_tokens(at_scale(mid)) <= budget ? lo : hi) = mid;
  }
  std::vector<FittedImage> out = at_scale(lo);
  for (size_t i = 0; i < out.size(); ++i) out[i].downscaled = out[i].tokens < own[i].tokens;
  return out;
}

}  // namespace qwenvl
