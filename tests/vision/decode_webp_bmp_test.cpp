// WebP (lossless exact, lossy close, alpha composited, EXIF chunk) and BMP (every layout the
// decoder accepts, and the ones it refuses), plus format sniffing from magic bytes.
#include <gtest/gtest.h>

#include "core/error.h"
#include "image_writers.h"
#include "vision/image.h"

namespace qwenvl {
namespace {

using test::Bytes;

uint8_t blend_white(uint8_t c, uint8_t a) {
  int t = 255 * (255 - a) + c * a + 128;
  return uint8_t(((t >> 8) + t) >> 8);
}

TEST(DecodeWebp, LosslessRgbIsExact) {
  Bytes rgb = test::random_bytes(21 * 13 * 3, 1);
  EXPECT_EQ(decode_image(test::encode_webp(21, 13, rgb, false, true), "l.webp").pixels, rgb);
}

TEST(DecodeWebp, LosslessAlphaIsComposited) {
  Bytes rgba = test::random_bytes(9 * 6 * 4, 2);
  RgbImage image = decode_image(test::encode_webp(9, 6, rgba, true, true), "la.webp");
  for (size_t i = 0; i < size_t(9 * 6); ++i)
    for (int c = 0; c < 3; ++c)
      ASSERT_EQ(image.pixels[3 * i + c], blend_white(rgba[4 * i + c], rgba[4 * i + 3]));
}

TEST(DecodeWebp, LossyIsClose) {
  Bytes rgb(64 * 48 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = uint8_t(60 + (i / 3 % 64) * 2 + i % 3 * 20);
  RgbImage image = decode_image(test::encode_webp(64, 48, rgb, false, false, 95), "q.webp");
  ASSERT_EQ(image.pixels.size(), rgb.size());
  int worst = 0;
  for (size_t i = 0; i < rgb.size(); ++i)
    worst = std::max(worst, std::abs(image.pixels[i] - rgb[i]));
  EXPECT_LE(worst, 16);
}

TEST(DecodeWebp, ExifChunkOrientation) {
  Bytes rgb = test::random_bytes(5 * 3 * 3, 3);  // 5 wide, 3 high
  Bytes simple = test::encode_webp(5, 3, rgb, false, true);
  RgbImage plain = decode_image(simple, "plain.webp");
  RgbImage rotated =
      decode_image(test::webp_with_exif(simple, 5, 3, test::exif_block(8, false)), "r.webp");
  EXPECT_EQ(rotated.width, 3);
  EXPECT_EQ(rotated.height, 5);
  EXPECT_EQ(rotated.pixels, apply_orientation(plain, 8).pixels);
}

TEST(DecodeWebp, TruncatedIsAnError) {
  Bytes webp = test::encode_webp(32, 32, test::random_bytes(32 * 32 * 3, 4), false, false);
  for (size_t keep : {size_t(12), size_t(30), webp.size() / 2}) {
    Bytes cut(webp.begin(), webp.begin() + keep);
    EXPECT_THROW(decode_image(cut, "cut.webp"), Error) << keep;
  }
}

// Rows of 3 pixels x 2 rows: distinct colours so any flip shows.
const Bytes kRgb = {1, 2, 3, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180};

std::vector<Bytes> bgr_rows(int bytes_per_pixel, uint8_t fourth = 0) {
  std::vector<Bytes> rows(2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x) {
      const uint8_t* p = &kRgb[(y * 3 + x) * 3];
      rows[y].insert(rows[y].end(), {p[2], p[1], p[0]});
      if (bytes_per_pixel == 4) rows[y].push_back(fourth);
    }
  return rows;
}

TEST(DecodeBmp, TwentyFourBitBottomUpAndTopDown) {
  test::BmpSpec spec;
  spec.width = 3, spec.height = 2;
  EXPECT_EQ(decode_image(test::encode_bmp(spec, bgr_rows(3)), "b.bmp").pixels, kRgb);
  spec.top_down = true;
  EXPECT_EQ(decode_image(test::encode_bmp(spec, bgr_rows(3)), "t.bmp").pixels, kRgb);
}

TEST(DecodeBmp, ThirtyTwoBitIgnoresTheFourthByteUnlessBitfieldsSayAlpha) {
  test::BmpSpec spec;
  spec.width = 3, spec.height = 2, spec.bits = 32;
  EXPECT_EQ(decode_image(test::encode_bmp(spec, bgr_rows(4, 0)), "x.bmp").pixels, kRgb);
  spec.compression = 3;
  spec.header_size = 108;
  spec.masks = {0xFF0000, 0xFF00, 0xFF, 0xFF000000};
  Bytes want(kRgb.size());
  for (size_t i = 0; i < kRgb.size(); ++i) want[i] = blend_white(kRgb[i], 100);
  EXPECT_EQ(decode_image(test::encode_bmp(spec, bgr_rows(4, 100)), "a.bmp").pixels, want);
  spec.header_size = 40;  // masks after a 40-byte header: no alpha mask, so BGRX
  spec.masks = {0xFF0000, 0xFF00, 0xFF};
  EXPECT_EQ(decode_image(test::encode_bmp(spec, bgr_rows(4, 100)), "f.bmp").pixels, kRgb);
}

TEST(DecodeBmp, PaletteDepths) {
  test::BmpSpec spec;
  spec.width = 3, spec.height = 2, spec.bits = 8;
  for (int i = 0; i < 6; ++i)
    spec.palette.insert(spec.palette.end(), {kRgb[i * 3 + 2], kRgb[i * 3 + 1], kRgb[i * 3], 0});
  EXPECT_EQ(decode_image(test::encode_bmp(spec, {{0, 1, 2}, {3, 4, 5}}), "p8.bmp").pixels, kRgb);
  spec.bits = 4;  // two pixels a byte, high nibble first
  EXPECT_EQ(decode_image(test::encode_bmp(spec, {{0x01, 0x20}, {0x34, 0x50}}), "p4.bmp").pixels,
            kRgb);
  spec.bits = 1;
  spec.palette.resize(8);
  Bytes want = {kRgb[0], kRgb[1], kRgb[2], kRgb[3], kRgb[4], kRgb[5], kRgb[0], kRgb[1], kRgb[2],
                kRgb[3], kRgb[4], kRgb[5], kRgb[3], kRgb[4], kRgb[5], kRgb[0], kRgb[1], kRgb[2]};
  EXPECT_EQ(decode_image(test::encode_bmp(spec, {{0b01000000}, {0b11000000}}), "p1.bmp").pixels,
            want);
  test::BmpSpec core;  // OS/2 BITMAPCOREHEADER: 3-byte palette entries
  core.width = 3, core.height = 2, core.bits = 8, core.header_size = 12;
  for (int i = 0; i < 256; ++i)
    core.palette.insert(core.palette.end(), {uint8_t(i), uint8_t(i), uint8_t(255 - i)});
  RgbImage image = decode_image(test::encode_bmp(core, {{0, 1, 2}, {3, 4, 5}}), "core.bmp");
  EXPECT_EQ(image.pixels[0], 255);  // entry 0: R = 255 - 0
  EXPECT_EQ(image.pixels[2], 0);
  EXPECT_EQ(image.pixels[5 * 3], 250);
}

TEST(DecodeBmp, UnsupportedAndBrokenFilesAreClearErrors) {
  test::BmpSpec spec;
  spec.width = 3, spec.height = 2, spec.bits = 8, spec.compression = 1;  // RLE8
  spec.palette.resize(16);
  Bytes rle = test::encode_bmp(spec, {{0, 1, 2}, {3, 0, 1}});
  try {
    decode_image(rle, "rle.bmp");
    FAIL() << "RLE accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("RLE"), std::string::npos) << e.what();
  }
  spec = {};
  spec.width = 3, spec.height = 2, spec.bits = 16;
  EXPECT_THROW(decode_image(test::encode_bmp(spec, {Bytes(6), Bytes(6)}), "16.bmp"), Error);
  spec.bits = 24;
  Bytes good = test::encode_bmp(spec, bgr_rows(3));
  for (size_t keep : {size_t(2), size_t(20), size_t(54), good.size() - 1}) {
    Bytes cut(good.begin(), good.begin() + keep);
    EXPECT_THROW(decode_image(cut, "cut.bmp"), Error) << keep;
  }
  Bytes huge = good;  // 40000 x 40000 claims 1.6 gigapixels: refused before allocating
  huge[18] = 0x40, huge[19] = 0x9C, huge[20] = 0, huge[22] = 0x40, huge[23] = 0x9C, huge[24] = 0;
  EXPECT_THROW(decode_image(huge, "huge.bmp"), Error);
  Bytes empty = good;
  empty[18] = empty[19] = 0;
  EXPECT_THROW(decode_image(empty, "empty.bmp"), Error);
}

TEST(DecodeImage, SniffsMagicBytesNotNames) {
  Bytes rgb = test::random_bytes(4 * 4 * 3, 9);
  EXPECT_EQ(decode_image(test::encode_png_rgb(4, 4, rgb), "looks-like.jpg").pixels, rgb);
  EXPECT_THROW(decode_image(Bytes{}, "empty.png"), Error);
  EXPECT_THROW(decode_image(Bytes{'G', 'I', 'F', '8', '9', 'a', 0, 0}, "x.gif"), Error);
  EXPECT_THROW(decode_image(test::random_bytes(100, 1), "noise.bin"), Error);
  try {
    decode_image(Bytes{'G', 'I', 'F', '8', '9', 'a'}, "anim.gif");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GIF"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qwenvl
