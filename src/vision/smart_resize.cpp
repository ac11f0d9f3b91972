// transformers' smart_resize (models/qwen2_vl/image_processing_qwen2_vl.py), operation for
// operation in doubles, so that every rounding lands where Python's does: round() is half-to-even
// (std::nearbyint in the default rounding mode), int / int is a correctly rounded double (exact
// here: all products stay below 2^53), and the beta expressions keep Python's evaluation order.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "vision/preprocess.h"

namespace qwenvl {

std::pair<int, int> smart_resize(int height, int width, int factor, int64_t min_pixels,
                                 int64_t max_pixels) {
  if (height <= 0 || width <= 0) fail("cannot resize an empty image (", width, "x", height, ")");
  if (factor <= 0) fail("smart_resize: the patch factor must be positive, got ", factor);
  if (min_pixels <= 0 || max_pixels <= 0)
    fail("min_pixels and max_pixels must be positive, got ", min_pixels, " and ", max_pixels);
  const double ratio = double(std::max(height, width)) / double(std::min(height, width));
  if (ratio > 200)
    fail("image of ", width, "x", height, " has an aspect ratio of ", ratio,
         "; Qwen2.5-VL accepts at most 200:1 (crop or pad the image)");

  const double h = height, w = width, f = factor;
  double h_bar = std::nearbyint(h / f) * f;
  double w_bar = std::nearbyint(w / f) * f;
  if (h_bar * w_bar > double(max_pixels)) {
    double beta = std::sqrt(double(int64_t(height) * width) / double(max_pixels));
    h_bar = std::max(f, std::floor(h / beta / f) * f);
    w_bar = std::max(f, std::floor(w / beta / f) * f);
  } else if (h_bar * w_bar < double(min_pixels)) {
    double beta = std::sqrt(double(min_pixels) / double(int64_t(height) * width));
    h_bar = std::ceil(h * beta / f) * f;
    w_bar = std::ceil(w * beta / f) * f;
  }
  if (h_bar > 1e9 || w_bar > 1e9)
    fail("smart_resize of ", width, "x", height, " gives an unusable size; check min_pixels");
  return {int(h_bar), int(w_bar)};
}

}  // namespace qwenvl
