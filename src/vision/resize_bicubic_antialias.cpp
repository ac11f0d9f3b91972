// resize_bicubic_antialias: torchvision's resize of a uint8 tensor (transforms.functional.resize,
// BICUBIC, antialias=True), which casts to float32 and calls torch's interpolate: the CPU kernel
// separable_upsample_generic_Nd_kernel_impl with HelperInterpCubic's antialias weights
// (_compute_indices_min_size_weights_aa, aa_filter with a = -0.5), the width pass then the height
// pass, each skipped when that side is unchanged; then clamp(0, 255), round half to even, uint8.
// Every step keeps torch's types: the weights are float32 from float32 scale, support and center
// (center and the filter argument pass through double, as in C++ `float * double`), and each
// output is t0·w0 + t1·w1 + ... summed in float32 in tap order. Like resize_bicubic, this must not
// be compiled with FMA contraction.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "vision/video.h"

namespace qwenvl {

namespace {

struct AaWeights {
  int64_t taps = 0;                // max_interp_size
  std::vector<int64_t> min, size;  // per output: first input index, number of taps
  std::vector<float> w;            // [out][taps]
};

float aa_cubic(float x) {
  constexpr float a = -0.5f;
  x = std::abs(x);
  if (x < 1.0f) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2.0f) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0.0f;
}

AaWeights aa_weights(int64_t in_size, int64_t out_size) {
  const float scale = float(in_size) / float(out_size);  // area_pixel_compute_scale<float>
  const float support = scale >= 1.0f ? float((4 * 0.5) * scale) : float(4 * 0.5);
  AaWeights c;
  c.taps = int64_t(std::ceil(support)) * 2 + 1;
  c.min.resize(size_t(out_size));
  c.size.resize(size_t(out_size));
  c.w.assign(size_t(out_size * c.taps), 0.0f);
  for (int64_t i = 0; i < out_size; ++i) {
    const float center = float(scale * (double(i) + 0.5));
    const float invscale = scale >= 1.0f ? float(1.0 / scale) : 1.0f;
    const int64_t xmin = std::max(int64_t(double(center - support) + 0.5), int64_t(0));
    int64_t xsize = std::min(int64_t(double(center + support) + 0.5), in_size) - xmin;
    xsize = std::clamp(xsize, int64_t(0), c.taps);
    float* w = &c.w[size_t(i * c.taps)];
    float total = 0.0f;
    for (int64_t j = 0; j < xsize; ++j) {
      const float x = float((double(float(j + xmin) - center) + 0.5) * double(invscale));
      w[j] = aa_cubic(x);
      total += w[j];
    }
    if (total != 0.0f)
      for (int64_t j = 0; j < xsize; ++j) w[j] /= total;
    c.min[size_t(i)] = xmin;
    c.size[size_t(i)] = xsize;
  }
  return c;
}

// One pass along a dimension: `lines` independent lines of `in_len` samples at stride `step`
// (in floats) between samples, `line_stride` between lines; 3 interleaved channels.
void aa_pass(const float* src, float* dst, int64_t lines, int64_t in_line_stride,
             int64_t out_line_stride, int64_t sample_stride, const AaWeights& c, int64_t out_len) {
  ThreadPool::global().parallel_for(lines, 16, [&](int64_t begin, int64_t end) {
    for (int64_t l = begin; l < end; ++l) {
      const float* in = src + l * in_line_stride;
      float* out = dst + l * out_line_stride;
      for (int64_t i = 0; i < out_len; ++i) {
        const float* w = &c.w[size_t(i * c.taps)];
        const int64_t first = c.min[size_t(i)], n = c.size[size_t(i)];
        for (int ch = 0; ch < 3; ++ch) {
          const float* s = in + first * sample_stride + ch;
          float sum = s[0] * w[0];
          for (int64_t j = 1; j < n; ++j) sum += s[j * sample_stride] * w[j];
          out[i * sample_stride + ch] = sum;
        }
      }
    }
  });
}

}  // namespace

RgbImage resize_bicubic_antialias(const RgbImage& image, int width, int height) {
  if (image.width <= 0 || image.height <= 0 || width <= 0 || height <= 0)
    fail("cannot resize a ", image.width, "x", image.height, " frame to ", width, "x", height);
  QWENVL_CHECK(image.pixels.size() == size_t(image.width) * image.height * 3);
  if (width == image.width && height == image.height) return image;  // torchvision returns it

  const int64_t in_w = image.width, in_h = image.height;
  std::vector<float> current(image.pixels.begin(), image.pixels.end());
  int64_t cur_w = in_w;
  if (width != in_w) {  // rows: samples 3 floats apart
    const AaWeights c = aa_weights(in_w, width);
    std::vector<float> next(size_t(in_h * width * 3));
    aa_pass(current.data(), next.data(), in_h, in_w * 3, int64_t(width) * 3, 3, c, width);
    current.swap(next);
    cur_w = width;
  }
  if (height != in_h) {  // columns: a "line" is one x, samples a row apart
    const AaWeights c = aa_weights(in_h, height);
    std::vector<float> next(size_t(int64_t(height) * cur_w * 3));
    aa_pass(current.data(), next.data(), cur_w, 3, 3, cur_w * 3, c, height);
    current.swap(next);
  }
  RgbImage out;
  out.width = width;
  out.height = height;
  out.pixels.resize(current.size());
  for (size_t i = 0; i < current.size(); ++i)
    out.pixels[i] = uint8_t(std::nearbyint(std::clamp(current[i], 0.0f, 255.0f)));
  return out;
}

}  // namespace qwenvl
