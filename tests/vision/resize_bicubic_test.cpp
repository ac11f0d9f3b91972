// resize_bicubic against Pillow's algorithm worked out by hand (double weights, normalised,
// 22-bit fixed point, 1 << 21 rounding bias, arithmetic shift, clip), plus the structural
// properties: no-op at the same size, passes independent per channel and axis, the tall path.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "vision/preprocess.h"

namespace qwenvl {
namespace {

// A grey image (R = G = B) from one row of values, `rows` times.
RgbImage grey_rows(const std::vector<int>& values, int rows = 1) {
  RgbImage image;
  image.width = int(values.size());
  image.height = rows;
  for (int y = 0; y < rows; ++y)
    for (int v : values)
      image.pixels.insert(image.pixels.end(), {uint8_t(v), uint8_t(v), uint8_t(v)});
  return image;
}

std::vector<int> red_row(const RgbImage& image, int y = 0) {
  std::vector<int> out;
  for (int x = 0; x < image.width; ++x)
    out.push_back(image.pixels[(size_t(y) * image.width + x) * 3]);
  return out;
}

RgbImage transpose(const RgbImage& in) {
  RgbImage out;
  out.width = in.height;
  out.height = in.width;
  out.pixels.resize(in.pixels.size());
  for (int y = 0; y < in.height; ++y)
    for (int x = 0; x < in.width; ++x)
      for (int c = 0; c < 3; ++c)
        out.pixels[(size_t(x) * out.width + y) * 3 + c] =
            in.pixels[(size_t(y) * in.width + x) * 3 + c];
  return out;
}

RgbImage random_image(int width, int height, uint32_t seed) {
  std::mt19937 rng(seed);
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(size_t(width) * height * 3);
  for (auto& p : image.pixels) p = uint8_t(rng());
  return image;
}

// Upscale 2 -> 4: scale 0.5, support 2. Output 0 has center 0.25 and taps at input 0 and 1 with
// filter(0.25) = 0.8671875 and filter(1.25) = -0.0703125, normalised by their sum 0.796875 and
// rounded to 4564390 and -370086 (of 2^22). (1<<21) + 200*4564390 - 10*370086 = 911274292,
// >> 22 = 217. The negative lobe takes the last output below zero: clipped to 0.
TEST(ResizeBicubic, UpscaleMatchesHandWorkedPillowValues) {
  RgbImage out = resize_bicubic(grey_rows({200, 10}), 4, 1);
  EXPECT_EQ(red_row(out), (std::vector<int>{217, 161, 49, 0}));
}

// Downscale 4 -> 2: scale 2 widens the support to 4 input pixels each side, so every output
// sees all four inputs; weights filter(0.25), filter(0.25), filter(0.75), filter(1.25) for the
// first: 1923834, 1923834, 502623, -155987.
TEST(ResizeBicubic, DownscaleScalesTheSupport) {
  RgbImage out = resize_bicubic(grey_rows({0, 100, 200, 255}), 2, 1);
  EXPECT_EQ(red_row(out), (std::vector<int>{60, 221}));
  RgbImage out3 = resize_bicubic(grey_rows({0, 255, 0, 255, 0}), 3, 1);
  EXPECT_EQ(red_row(out3), (std::vector<int>{106, 126, 106}));
}

TEST(ResizeBicubic, VerticalPassEqualsHorizontalPassTransposed) {
  RgbImage column = resize_bicubic(grey_rows({0, 255, 0, 255, 0}), 3, 1);
  RgbImage tall = resize_bicubic(transpose(grey_rows({0, 255, 0, 255, 0})), 1, 3);
  EXPECT_EQ(transpose(tall).pixels, column.pixels);
  // With one axis unchanged each output is one 1-D filter, so the passes are interchangeable.
  RgbImage wide = random_image(37, 11, 3);
  EXPECT_EQ(transpose(resize_bicubic(transpose(wide), 11, 20)).pixels,
            resize_bicubic(wide, 20, 11).pixels);
}

TEST(ResizeBicubic, SameSizeIsAnExactCopy) {
  RgbImage image = random_image(13, 9, 1);
  RgbImage out = resize_bicubic(image, 13, 9);
  EXPECT_EQ(out.width, 13);
  EXPECT_EQ(out.height, 9);
  EXPECT_EQ(out.pixels, image.pixels);
}

TEST(ResizeBicubic, ConstantImagesStayConstant) {
  for (int v : {0, 1, 127, 254, 255}) {
    RgbImage image = grey_rows(std::vector<int>(23, v), 17);
    for (auto [w, h] : {std::pair{7, 5}, {56, 84}, {23, 3}, {4, 17}}) {
      RgbImage out = resize_bicubic(image, w, h);
      for (uint8_t p : out.pixels) ASSERT_EQ(p, v) << w << "x" << h;
    }
  }
}

TEST(ResizeBicubic, ChannelsAreIndependent) {
  RgbImage image = random_image(31, 19, 5);
  RgbImage out = resize_bicubic(image, 45, 12);
  for (int c = 0; c < 3; ++c) {
    RgbImage one = image;  // channel c copied into all three
    for (size_t i = 0; i < one.pixels.size(); i += 3)
      one.pixels[i] = one.pixels[i + 1] = one.pixels[i + 2] = image.pixels[i + c];
    RgbImage r = resize_bicubic(one, 45, 12);
    for (size_t i = 0; i < r.pixels.size(); i += 3) ASSERT_EQ(r.pixels[i], out.pixels[i + c]);
  }
}

// Two-axis resizes run horizontal then vertical with 8-bit rounding in between, except that
// Pillow >= 12.2 shrinks images taller than 100:1 vertically first.
TEST(ResizeBicubic, PassOrderFollowsPillow) {
  RgbImage image = random_image(29, 31, 11);
  RgbImage h_first = resize_bicubic(resize_bicubic(image, 17, 31), 17, 13);
  EXPECT_EQ(resize_bicubic(image, 17, 13).pixels, h_first.pixels);

  RgbImage tall = random_image(3, 400, 12);  // 133:1
  RgbImage v_first = resize_bicubic(resize_bicubic(tall, 3, 150), 5, 150);
  EXPECT_EQ(resize_bicubic(tall, 5, 150).pixels, v_first.pixels);
  // The order is visible: horizontal first rounds differently.
  RgbImage h_first_tall = resize_bicubic(resize_bicubic(tall, 5, 400), 5, 150);
  EXPECT_NE(h_first_tall.pixels, v_first.pixels);
  RgbImage tall_up = resize_bicubic(resize_bicubic(tall, 5, 400), 5, 450);  // growing: normal
  EXPECT_EQ(resize_bicubic(tall, 5, 450).pixels, tall_up.pixels);
}

TEST(ResizeBicubic, RejectsEmptyTargets) {
  RgbImage image = random_image(4, 4, 2);
  EXPECT_THROW(resize_bicubic(image, 0, 4), Error);
  EXPECT_THROW(resize_bicubic(image, 4, -1), Error);
}

}  // namespace
}  // namespace qwenvl
