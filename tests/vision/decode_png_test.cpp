// PNG decoding: every colour type and depth written with libpng here, checked against what
// Pillow's convert("RGB") (or the white composite for alpha) gives for the same samples.
#include <gtest/gtest.h>

#include "core/error.h"
#include "image_writers.h"
#include "vision/image.h"

namespace qwenvl {
namespace {

using test::Bytes;

uint8_t blend_white(uint8_t c, uint8_t a) {  // Pillow's paste with an L mask onto white
  int t = 255 * (255 - a) + c * a + 128;
  return uint8_t(((t >> 8) + t) >> 8);
}

TEST(DecodePng, Rgb8IsLossless) {
  Bytes rgb = test::random_bytes(17 * 9 * 3, 1);
  RgbImage image = decode_image(test::encode_png_rgb(17, 9, rgb), "rgb.png");
  EXPECT_EQ(image.width, 17);
  EXPECT_EQ(image.height, 9);
  EXPECT_EQ(image.pixels, rgb);
}

TEST(DecodePng, InterlacedEqualsPlain) {
  Bytes rgb = test::random_bytes(23 * 19 * 3, 2);
  test::PngSpec spec;
  spec.width = 23, spec.height = 19, spec.interlace = true;
  EXPECT_EQ(decode_image(test::encode_png(spec, rgb), "adam7.png").pixels, rgb);
}

TEST(DecodePng, RgbaIsCompositedOnWhite) {
  Bytes rgba = test::random_bytes(11 * 7 * 4, 3);
  rgba[3] = 0, rgba[7] = 255, rgba[11] = 128;  // fully clear, opaque, half
  test::PngSpec spec;
  spec.width = 11, spec.height = 7, spec.color_type = PNG_COLOR_TYPE_RGBA;
  RgbImage image = decode_image(test::encode_png(spec, rgba), "rgba.png");
  ASSERT_EQ(image.pixels.size(), size_t(11 * 7 * 3));
  for (size_t i = 0; i < size_t(11 * 7); ++i)
    for (int c = 0; c < 3; ++c)
      ASSERT_EQ(image.pixels[3 * i + c], blend_white(rgba[4 * i + c], rgba[4 * i + 3])) << i;
  EXPECT_EQ(image.pixels[0], 255);      // clear -> white
  EXPECT_EQ(image.pixels[3], rgba[4]);  // opaque -> the colour
  // Half: DIV255(255 * 127 + c * 128) rounds to nearest: c = 0 gives 127.
  EXPECT_EQ(blend_white(0, 128), 127);
  EXPECT_EQ(blend_white(255, 77), 255);
}

TEST(DecodePng, GreyAndGreyAlpha) {
  Bytes grey = test::random_bytes(8 * 5, 4);
  test::PngSpec spec;
  spec.width = 8, spec.height = 5, spec.color_type = PNG_COLOR_TYPE_GRAY;
  RgbImage image = decode_image(test::encode_png(spec, grey), "grey.png");
  for (size_t i = 0; i < grey.size(); ++i)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(image.pixels[3 * i + c], grey[i]);

  Bytes ga = test::random_bytes(8 * 5 * 2, 5);
  spec.color_type = PNG_COLOR_TYPE_GRAY_ALPHA;
  image = decode_image(test::encode_png(spec, ga), "la.png");
  for (size_t i = 0; i < grey.size(); ++i)
    for (int c = 0; c < 3; ++c)
      ASSERT_EQ(image.pixels[3 * i + c], blend_white(ga[2 * i], ga[2 * i + 1]));
}

TEST(DecodePng, LowBitGreyIsScaledLikePillow) {
  // 2-bit grey, one row of 4 pixels packed MSB first: 0, 1, 2, 3 -> 0, 85, 170, 255 ("L;2").
  test::PngSpec spec;
  spec.width = 4, spec.height = 1, spec.bit_depth = 2, spec.color_type = PNG_COLOR_TYPE_GRAY;
  RgbImage image = decode_image(test::encode_png(spec, Bytes{0b00011011}), "l2.png");
  EXPECT_EQ(image.pixels, (Bytes{0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255}));
  spec.bit_depth = 1, spec.width = 3;  // "1": 0 / 255
  image = decode_image(test::encode_png(spec, Bytes{0b10100000}), "l1.png");
  EXPECT_EQ(image.pixels, (Bytes{255, 255, 255, 0, 0, 0, 255, 255, 255}));
}

TEST(DecodePng, SixteenBitFollowsPillowsUnpackers) {
  // RGB 16: the high byte of each sample ("RGB;16B"), never rounded.
  Bytes rgb16 = {0x12, 0xFF, 0x80, 0x80, 0xFE, 0xFF};  // one pixel, big-endian samples
  test::PngSpec spec;
  spec.width = 1, spec.height = 1, spec.bit_depth = 16;
  EXPECT_EQ(decode_image(test::encode_png(spec, rgb16), "rgb16.png").pixels,
            (Bytes{0x12, 0x80, 0xFE}));
  // RGBA 16: high bytes, then the white composite.
  spec.color_type = PNG_COLOR_TYPE_RGBA;
  Bytes rgba16 = {0x40, 0x01, 0x80, 0xFF, 0xC0, 0x00, 0x80, 0x7F};
  EXPECT_EQ(decode_image(test::encode_png(spec, rgba16), "rgba16.png").pixels,
            (Bytes{blend_white(0x40, 0x80), blend_white(0x80, 0x80), blend_white(0xC0, 0x80)}));
  // Grey 16 is Pillow's "I;16": convert("RGB") keeps values up to 255 and clips the rest.
  spec.color_type = PNG_COLOR_TYPE_GRAY;
  spec.width = 4;
  Bytes grey16 = {0x00, 0x07, 0x00, 0xFF, 0x01, 0x00, 0xFF, 0xFF};  // 7, 255, 256, 65535
  EXPECT_EQ(decode_image(test::encode_png(spec, grey16), "i16.png").pixels,
            (Bytes{7, 7, 7, 255, 255, 255, 255, 255, 255, 255, 255, 255}));
}

TEST(DecodePng, PaletteWithTransparency) {
  test::PngSpec spec;
  spec.width = 4, spec.height = 1, spec.bit_depth = 8, spec.color_type = PNG_COLOR_TYPE_PALETTE;
  spec.palette = {{10, 20, 30}, {200, 100, 50}, {0, 0, 0}, {255, 0, 255}};
  Bytes indices = {0, 1, 2, 3};
  EXPECT_EQ(decode_image(test::encode_png(spec, indices), "p.png").pixels,
            (Bytes{10, 20, 30, 200, 100, 50, 0, 0, 0, 255, 0, 255}));
  spec.trns_alpha = {255, 0, 100};  // index 3 has no entry: opaque
  Bytes want = {
      10,  20, 30, 255, 255, 255, blend_white(0, 100), blend_white(0, 100), blend_white(0, 100),
      255, 0,  255};
  EXPECT_EQ(decode_image(test::encode_png(spec, indices), "p-trns.png").pixels, want);
}

TEST(DecodePng, ColourKeyBecomesWhite) {
  test::PngSpec spec;
  spec.width = 2, spec.height = 1;
  spec.trns_key = true;
  spec.key.red = 1, spec.key.green = 2, spec.key.blue = 3;
  Bytes rgb = {1, 2, 3, 1, 2, 4};
  EXPECT_EQ(decode_image(test::encode_png(spec, rgb), "key.png").pixels,
            (Bytes{255, 255, 255, 1, 2, 4}));
}

TEST(DecodePng, TruncatedAndCorruptFilesAreErrors) {
  Bytes png = test::encode_png_rgb(64, 64, test::random_bytes(64 * 64 * 3, 6));
  for (size_t keep : {size_t(8), size_t(20), size_t(40), png.size() / 2, png.size() - 13}) {
    Bytes cut(png.begin(), png.begin() + keep);
    EXPECT_THROW(decode_image(cut, "cut.png"), Error) << keep;
  }
  for (uint32_t seed = 0; seed < 40; ++seed) {  // random damage after the signature
    Bytes bad = png;
    Bytes noise = test::random_bytes(8, seed);
    size_t at = 8 + (seed * 977) % (bad.size() - 16);
    std::copy(noise.begin(), noise.end(), bad.begin() + at);
    try {
      decode_image(bad, "bad.png");  // may survive if only an ancillary byte changed
    } catch (const Error&) {
    }
  }
}

TEST(DecodePng, ZeroSizedHeaderIsAnError) {
  Bytes png = test::encode_png_rgb(2, 2, Bytes(12, 7));
  png[16] = png[17] = png[18] = png[19] = 0;  // IHDR width = 0 (CRC now wrong too)
  EXPECT_THROW(decode_image(png, "zero.png"), Error);
}

}  // namespace
}  // namespace qwenvl
