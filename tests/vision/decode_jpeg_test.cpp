// JPEG decoding: images encoded here with libjpeg (baseline, progressive, grey, CMYK), EXIF
// orientation from an APP1 segment in both byte orders, and broken files.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "image_writers.h"
#include "vision/image.h"

namespace qwenvl {
namespace {

using test::Bytes;

// A smooth image JPEG reproduces within a few levels.
Bytes smooth_rgb(int width, int height) {
  Bytes rgb(size_t(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &rgb[(size_t(y) * width + x) * 3];
      p[0] = uint8_t(40 + 150 * x / width);
      p[1] = uint8_t(30 + 180 * y / height);
      p[2] = uint8_t(128 + 60 * std::sin(0.1 * (x + y)));
    }
  return rgb;
}

int max_abs_diff(const Bytes& a, const Bytes& b) {
  EXPECT_EQ(a.size(), b.size());
  int worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

TEST(DecodeJpeg, BaselineAndProgressiveDecodeTheSamePixels) {
  Bytes rgb = smooth_rgb(64, 40);
  test::JpegSpec spec;
  spec.width = 64, spec.height = 40;
  RgbImage baseline = decode_image(test::encode_jpeg(spec, rgb), "b.jpg");
  EXPECT_EQ(baseline.width, 64);
  EXPECT_EQ(baseline.height, 40);
  EXPECT_LE(max_abs_diff(baseline.pixels, rgb), 12);
  spec.progressive = true;
  RgbImage progressive = decode_image(test::encode_jpeg(spec, rgb), "p.jpg");
  EXPECT_LE(max_abs_diff(progressive.pixels, rgb), 12);
}

TEST(DecodeJpeg, GreyIsReplicated) {
  Bytes grey(32 * 16);
  for (size_t i = 0; i < grey.size(); ++i) grey[i] = uint8_t(i % 32 * 8);
  test::JpegSpec spec;
  spec.width = 32, spec.height = 16, spec.components = 1, spec.in_space = JCS_GRAYSCALE;
  RgbImage image = decode_image(test::encode_jpeg(spec, grey), "g.jpg");
  for (size_t i = 0; i < grey.size(); ++i) {
    ASSERT_EQ(image.pixels[3 * i], image.pixels[3 * i + 1]);
    ASSERT_EQ(image.pixels[3 * i], image.pixels[3 * i + 2]);
    ASSERT_NEAR(image.pixels[3 * i], grey[i], 10);
  }
}

// Pillow writes CMYK JPEGs inverted ("CMYK;I", Adobe's convention) and reads them back the same
// way, so an inverted file of flat ink decodes to cmyk2rgb of the real ink.
TEST(DecodeJpeg, CmykFollowsPillowsAdobeConvention) {
  const int w = 16, h = 16;
  const uint8_t ink[4] = {20, 200, 90, 40};  // C, M, Y, K
  Bytes stored(size_t(w) * h * 4);
  for (size_t i = 0; i < stored.size(); ++i) stored[i] = uint8_t(255 - ink[i % 4]);
  test::JpegSpec spec;
  spec.width = w, spec.height = h, spec.components = 4, spec.in_space = JCS_CMYK;
  spec.quality = 100;
  RgbImage image = decode_image(test::encode_jpeg(spec, stored), "cmyk.jpg");
  const int nk = 255 - ink[3];
  for (int c = 0; c < 3; ++c) {
    int t = ink[c] * nk + 128;
    int want = nk - (((t >> 8) + t) >> 8);
    EXPECT_NEAR(image.pixels[c], want, 2) << c;
    EXPECT_NEAR(image.pixels[(size_t(w) * h - 1) * 3 + c], want, 2) << c;
  }
}

TEST(DecodeJpeg, ExifOrientationRotatesTheImage) {
  // 32 x 16: left half dark, right half bright; blocks align with 8x8 DCT blocks.
  const int w = 32, h = 16;
  Bytes rgb(size_t(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        rgb[(size_t(y) * w + x) * 3 + c] = x < 16 ? 20 : (y < 8 ? 230 : 140);
  for (bool big_endian : {false, true}) {
    test::JpegSpec spec;
    spec.width = w, spec.height = h, spec.quality = 100;
    spec.app1 = test::exif_block(6, big_endian);
    RgbImage image = decode_image(test::encode_jpeg(spec, rgb), "exif6.jpg");
    ASSERT_EQ(image.width, h);  // rotated 90 degrees clockwise
    ASSERT_EQ(image.height, w);
    // The source's top-left dark corner is now top-right; its bright right half is at the bottom.
    EXPECT_NEAR(image.pixels[(0 * h + (h - 1)) * 3], 20, 4);
    EXPECT_NEAR(image.pixels[(size_t(w - 1) * h + (h - 1)) * 3], 230, 4);
    EXPECT_NEAR(image.pixels[(size_t(w - 1) * h + 0) * 3], 140, 4);
  }
}

TEST(DecodeJpeg, TruncatedAndCorruptFilesAreErrorsNotCrashes) {
  test::JpegSpec spec;
  spec.width = 48, spec.height = 48;
  Bytes jpeg = test::encode_jpeg(spec, smooth_rgb(48, 48));
  for (size_t keep : {size_t(3), size_t(50), size_t(200), jpeg.size() / 2, jpeg.size() - 2}) {
    Bytes cut(jpeg.begin(), jpeg.begin() + keep);
    EXPECT_THROW(decode_image(cut, "cut.jpg"), Error) << keep;
  }
  spec.progressive = true;
  Bytes progressive = test::encode_jpeg(spec, smooth_rgb(48, 48));
  Bytes cut(progressive.begin(), progressive.begin() + progressive.size() * 2 / 3);
  EXPECT_THROW(decode_image(cut, "cut-progressive.jpg"), Error);
  for (uint32_t seed = 0; seed < 60; ++seed) {
    Bytes bad = jpeg;
    Bytes noise = test::random_bytes(6, seed);
    std::copy(noise.begin(), noise.end(), bad.begin() + 2 + (seed * 131) % (bad.size() - 10));
    try {
      RgbImage image = decode_image(bad, "bad.jpg");  // entropy damage may still decode
      EXPECT_EQ(image.pixels.size(), size_t(image.width) * image.height * 3);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.jpg"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace qwenvl
