// EXIF orientation: the tag reader on good and broken blocks, the eight transposes on a 3x2
// image written out by hand, and the plumbing from a PNG eXIf chunk for every value.
#include <gtest/gtest.h>

#include "image_writers.h"
#include "vision/image.h"

namespace qwenvl {
namespace {

using test::Bytes;

// Pixel values 1..6 stand for the letters of
//   A B C
//   D E F
RgbImage letters() {
  RgbImage image;
  image.width = 3, image.height = 2;
  for (uint8_t v = 1; v <= 6; ++v) image.pixels.insert(image.pixels.end(), {v, v, v});
  return image;
}

std::vector<int> reds(const RgbImage& image) {
  std::vector<int> out;
  for (size_t i = 0; i < image.pixels.size(); i += 3) out.push_back(image.pixels[i]);
  return out;
}

TEST(Orientation, ReadsTheTagInBothByteOrders) {
  for (int o = 1; o <= 8; ++o) {
    EXPECT_EQ(exif_orientation(test::exif_block(o, false)), o);
    EXPECT_EQ(exif_orientation(test::exif_block(o, true)), o);
    EXPECT_EQ(exif_orientation(test::exif_block(o, true, false)), o);  // no "Exif\0\0"
  }
}

TEST(Orientation, BrokenBlocksMeanUpright) {
  EXPECT_EQ(exif_orientation({}), 1);
  EXPECT_EQ(exif_orientation(test::exif_block(9, false)), 1);
  EXPECT_EQ(exif_orientation(test::exif_block(0, false)), 1);
  Bytes block = test::exif_block(6, false);
  for (size_t cut = 0; cut < block.size() - 4; ++cut)  // the tag's value ends 6 bytes from the end
    EXPECT_EQ(exif_orientation(std::span(block).first(cut)), 1) << cut;
  Bytes bad_offset = block;
  bad_offset[10] = 0xF0;  // IFD0 offset far past the end
  EXPECT_EQ(exif_orientation(bad_offset), 1);
  for (uint32_t seed = 0; seed < 200; ++seed) {  // no crash on noise
    int o = exif_orientation(test::random_bytes(seed % 40, seed));
    EXPECT_TRUE(o >= 1 && o <= 8);
  }
}

TEST(Orientation, TransposesLikePillow) {
  // ImageOps.exif_transpose's methods applied to ABC/DEF.
  const std::vector<std::vector<int>> want = {
      {1, 2, 3, 4, 5, 6},  // 1: as stored
      {3, 2, 1, 6, 5, 4},  // 2: FLIP_LEFT_RIGHT   CBA/FED
      {6, 5, 4, 3, 2, 1},  // 3: ROTATE_180        FED/CBA
      {4, 5, 6, 1, 2, 3},  // 4: FLIP_TOP_BOTTOM   DEF/ABC
      {1, 4, 2, 5, 3, 6},  // 5: TRANSPOSE         AD/BE/CF
      {4, 1, 5, 2, 6, 3},  // 6: ROTATE_270 (cw)   DA/EB/FC
      {6, 3, 5, 2, 4, 1},  // 7: TRANSVERSE        FC/EB/DA
      {3, 6, 2, 5, 1, 4},  // 8: ROTATE_90 (ccw)   CF/BE/AD
  };
  for (int o = 1; o <= 8; ++o) {
    RgbImage out = apply_orientation(letters(), o);
    EXPECT_EQ(reds(out), want[o - 1]) << "orientation " << o;
    EXPECT_EQ(out.width, o >= 5 ? 2 : 3) << o;
    EXPECT_EQ(out.height, o >= 5 ? 3 : 2) << o;
  }
}

TEST(Orientation, AppliedFromPngExif) {
  RgbImage upright = letters();
  for (int o = 1; o <= 8; ++o) {
    test::PngSpec spec;
    spec.width = 3, spec.height = 2;
    spec.exif = test::exif_block(o, o % 2 == 0, false);
    RgbImage decoded = decode_image(test::encode_png(spec, upright.pixels), "exif.png");
    RgbImage want = apply_orientation(upright, o);
    EXPECT_EQ(decoded.width, want.width) << o;
    EXPECT_EQ(decoded.pixels, want.pixels) << o;
  }
}

}  // namespace
}  // namespace qwenvl
