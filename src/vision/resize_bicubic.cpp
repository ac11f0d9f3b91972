// Pillow's ImagingResample (libImaging/Resample.c) with the BICUBIC filter (a = -0.5) on 8-bit
// RGB, bit for bit: per output pixel the filter support is scaled by the downscale factor, the
// double weights are normalised to sum 1, turned into fixed point with PRECISION_BITS = 22 (round
// half away from zero), accumulated in int32 from 1 << 21, shifted back and clipped. Two passes,
// horizontal first over only the rows the vertical pass will read, each pass skipped when its
// size is unchanged. Image.resize (Pillow >= 12.2) resizes images taller than 100:1 vertically
// first when it shrinks their height; that path is mirrored too.
//
// The filter's double arithmetic must not be contracted into FMAs (baseline x86-64 has none; keep
// -march and -ffp-contract as they are) or coefficients can move by one unit in the last place.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/error.h"
#include "core/thread_pool.h"
#include "vision/large_buffer.h"
#include "vision/preprocess.h"

namespace qwenvl {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kSupport = 2.0;  // bicubic

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Pillow's clip8 via its lookup table: the value is shifted (arithmetically) then clamped.
inline uint8_t clip8(int32_t sum) {
  int32_t v = sum >> kPrecisionBits;
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

struct Coefficients {
  int ksize = 0;
  std::vector<int> bounds;  // [out][2]: first input index, number of taps
  std::vector<int32_t> k;   // [out][ksize], fixed point
};

// precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size).
Coefficients precompute(int in_size, int out_size) {
  const double in0 = 0.0, in1 = double(float(in_size));  // Pillow's box is float[4]
  const double scale = (in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kSupport * filterscale;
  Coefficients c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.bounds.resize(size_t(out_size) * 2);
  c.k.assign(size_t(out_size) * c.ksize, 0);
  std::vector<double> weights(c.ksize);
  const double inv_filterscale = 1.0 / filterscale;
  for (int xx = 0; xx < out_size; ++xx) {
    double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    for (int x = 0; x < xmax; ++x) {
      double w = bicubic_filter((x + xmin - center + 0.5) * inv_filterscale);
      weights[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      double w = ww != 0.0 ? weights[x] / ww : weights[x];
      c.k[size_t(xx) * c.ksize + x] = w < 0 ? int32_t(-0.5 + w * (1 << kPrecisionBits))
                                            : int32_t(0.5 + w * (1 << kPrecisionBits));
    }
    c.bounds[2 * xx] = xmin;
    c.bounds[2 * xx + 1] = xmax;
  }
  return c;
}

// Interleaved RGB rows without ownership: an RgbImage's pixels or a scratch buffer.
struct Plane {
  uint8_t* data;
  int width, height;
};

Plane plane_of(RgbImage& image) { return {image.pixels.data(), image.width, image.height}; }
Plane plane_of(const RgbImage& image) {
  return {const_cast<uint8_t*>(image.pixels.data()), image.width, image.height};
}

// One row of the horizontal pass, Pillow's loop as written.
void horizontal_row(const uint8_t* src, const Coefficients& c, uint8_t* dst, int out_width) {
  for (int xx = 0; xx < out_width; ++xx) {
    const int xmin = c.bounds[2 * xx], xmax = c.bounds[2 * xx + 1];
    const int32_t* k = &c.k[size_t(xx) * c.ksize];
    const uint8_t* s = src + size_t(xmin) * 3;
    int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
    for (int x = 0; x < xmax; ++x) {
      s0 += s[3 * x] * k[x];
      s1 += s[3 * x + 1] * k[x];
      s2 += s[3 * x + 2] * k[x];
    }
    dst[3 * xx] = clip8(s0);
    dst[3 * xx + 1] = clip8(s1);
    dst[3 * xx + 2] = clip8(s2);
  }
}

#if defined(__x86_64__)
// The same sums with the three channels in one SSE register (same int32 arithmetic, so the same
// bytes). A tap loads 4 bytes (R, G, B and the next pixel's R, whose lane is ignored); only the
// last pixel of a row, which has no next pixel, is assembled byte by byte.
__attribute__((target("sse4.1"))) void horizontal_row_sse41(const uint8_t* src, int in_width,
                                                            const Coefficients& c, uint8_t* dst,
                                                            int out_width) {
  const __m128i bias = _mm_set1_epi32(1 << (kPrecisionBits - 1));
  for (int xx = 0; xx < out_width; ++xx) {
    const int xmin = c.bounds[2 * xx], xmax = c.bounds[2 * xx + 1];
    const int32_t* k = &c.k[size_t(xx) * c.ksize];
    const uint8_t* s = src + size_t(xmin) * 3;
    const int safe = std::min(xmax, in_width - 1 - xmin);  // taps with a pixel after them
    __m128i acc = bias;
    int x = 0;
    for (; x < safe; ++x) {
      int32_t bytes;
      std::memcpy(&bytes, s + 3 * x, 4);
      __m128i px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(bytes));
      acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(k[x])));
    }
    for (; x < xmax; ++x) {
      __m128i px = _mm_setr_epi32(s[3 * x], s[3 * x + 1], s[3 * x + 2], 0);
      acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(k[x])));
    }
    // clip8: arithmetic shift, then saturate to 0..255 (values stay within int16 before that).
    __m128i v = _mm_srai_epi32(acc, kPrecisionBits);
    v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
    int32_t packed = _mm_cvtsi128_si32(v);
    std::memcpy(dst + 3 * xx, &packed, 3);
  }
}
#endif

bool cpu_has_sse41() {
#if defined(__x86_64__)
  static const bool has = __builtin_cpu_supports("sse4.1");
  return has;
#else
  return false;
#endif
}

// Rows [first_row, first_row + out.height) of `in`, resampled horizontally to out.width.
void horizontal_pass(Plane in, int first_row, const Coefficients& c, Plane out) {
  const bool sse41 = cpu_has_sse41();
  ThreadPool::global().parallel_for(out.height, 16, [&](int64_t begin, int64_t end) {
    for (int64_t yy = begin; yy < end; ++yy) {
      const uint8_t* src = in.data + size_t(yy + first_row) * in.width * 3;
      uint8_t* dst = out.data + size_t(yy) * out.width * 3;
#if defined(__x86_64__)
      if (sse41) {
        horizontal_row_sse41(src, in.width, c, dst, out.width);
        continue;
      }
#endif
      horizontal_row(src, c, dst, out.width);
    }
  });
  (void)sse41;
}

// acc[j] += src[j] * weight over one row; cloned for AVX2 (exact integer arithmetic either way).
__attribute__((target_clones("avx2", "default"))) void accumulate_row(int32_t* acc,
                                                                      const uint8_t* src,
                                                                      int32_t weight, size_t n) {
  for (size_t j = 0; j < n; ++j) acc[j] += src[j] * weight;
}

// Vertical resample of `in` with bounds already relative to in's first row.
void vertical_pass(Plane in, const Coefficients& c, Plane out) {
  const size_t row_len = size_t(out.width) * 3;
  ThreadPool::global().parallel_for(out.height, 8, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> acc(row_len);
    for (int64_t yy = begin; yy < end; ++yy) {
      const int ymin = c.bounds[2 * yy], ymax = c.bounds[2 * yy + 1];
      const int32_t* k = &c.k[size_t(yy) * c.ksize];
      std::fill(acc.begin(), acc.end(), int32_t(1) << (kPrecisionBits - 1));
      for (int y = 0; y < ymax; ++y)
        accumulate_row(acc.data(), in.data + size_t(ymin + y) * row_len, k[y], row_len);
      uint8_t* dst = out.data + size_t(yy) * row_len;
      for (size_t j = 0; j < row_len; ++j) dst[j] = clip8(acc[j]);
    }
  });
}

RgbImage blank(int width, int height) {
  RgbImage image;
  image.width = width;
  image.height = height;
  vision_detail::resize_pixels(image.pixels, size_t(width) * height * 3);
  return image;
}

// ImagingResampleInner with box (0, 0, in.width, in.height).
RgbImage resample(const RgbImage& in, int width, int height) {
  const bool need_horizontal = width != in.width;
  const bool need_vertical = height != in.height;
  if (!need_horizontal && !need_vertical) return in;
  Coefficients vertical = precompute(in.height, height);
  const int ybox_first = vertical.bounds[0];
  const int ybox_last = vertical.bounds[2 * height - 2] + vertical.bounds[2 * height - 1];

  if (!need_vertical) {  // one horizontal pass over every row, straight into the result
    RgbImage out = blank(width, in.height);
    horizontal_pass(plane_of(in), 0, precompute(in.width, width), plane_of(out));
    return out;
  }
  Plane source = plane_of(in);
  std::shared_ptr<void> scratch;  // the horizontal pass's rows, in 2 MB pages when large
  if (need_horizontal) {
    for (int i = 0; i < height; ++i) vertical.bounds[2 * i] -= ybox_first;
    const int rows = ybox_last - ybox_first;
    scratch = vision_detail::allocate_large(size_t(width) * rows * 3);
    source = {static_cast<uint8_t*>(scratch.get()), width, rows};
    horizontal_pass(plane_of(in), ybox_first, precompute(in.width, width), source);
  }
  RgbImage out = blank(source.width, height);
  vertical_pass(source, vertical, plane_of(out));
  return out;
}

}  // namespace

RgbImage resize_bicubic(const RgbImage& image, int width, int height) {
  if (width <= 0 || height <= 0) fail("cannot resize an image to ", width, "x", height);
  if (image.width <= 0 || image.height <= 0) fail("cannot resize an empty image");
  QWENVL_CHECK(image.pixels.size() == size_t(image.width) * image.height * 3);
  if (width == image.width && height == image.height) return image;  // Image.resize: a copy
  // Image.resize: "if self.size[1] > self.size[0] * 100 and size[1] < self.size[1]" resizes the
  // height first (a vertical-only call), then the width (a horizontal-only call).
  if (int64_t(image.height) > int64_t(image.width) * 100 && height < image.height)
    return resample(resample(image, image.width, height), width, height);
  return resample(image, width, height);
}

}  // namespace qwenvl
