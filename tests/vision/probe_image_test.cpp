// probe_image against decode_image: the same upright size for every fixture image and for EXIF
// orientations in each format, the same refusals, and no pixels decoded.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "image_writers.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;
using test::Bytes;

const fs::path kImages = fs::path(QWENVL_FIXTURES_DIR) / "images";

ImageFormat format_of_name(const std::string& file) {
  const std::string ext = fs::path(file).extension().string();
  return ext == ".png"    ? ImageFormat::kPng
         : ext == ".webp" ? ImageFormat::kWebp
         : ext == ".bmp"  ? ImageFormat::kBmp
                          : ImageFormat::kJpeg;
}

TEST(ProbeImage, EqualsTheDecodedSizeForEveryFixture) {
  if (!fs::exists(kImages / "expected.json")) GTEST_SKIP() << "fixtures not generated yet";
  std::ifstream in(kImages / "expected.json");
  const nlohmann::json cases = nlohmann::json::parse(in);
  std::set<std::string> seen;
  for (const auto& c : cases) {
    const std::string file = c["file"].get<std::string>();
    SCOPED_TRACE(file);
    const Bytes bytes = read_image_file((kImages / file).string());
    const RgbImage image = decode_image(bytes, file);
    const ImageHeader header = probe_image(bytes, file);
    EXPECT_EQ(header.width, image.width);
    EXPECT_EQ(header.height, image.height);
    EXPECT_EQ(header.format, format_of_name(file));
    if (c.contains("error")) {  // refused by the processor: from the probed size already
      EXPECT_THROW(smart_resize(header.height, header.width, 28, c["min_pixels"].get<int64_t>(),
                                c["max_pixels"].get<int64_t>()),
                   Error);
    } else {  // the token count the caller will compute from the probe
      auto [h, w] = smart_resize(header.height, header.width, 28, c["min_pixels"].get<int64_t>(),
                                 c["max_pixels"].get<int64_t>());
      EXPECT_EQ(h, c["resized_hw"][0].get<int>());
      EXPECT_EQ(w, c["resized_hw"][1].get<int>());
    }
    seen.insert(file);
  }
  EXPECT_GE(seen.size(), 30u);
}

// 6 wide, 4 high, stored with each EXIF orientation: 5-8 come out 4 wide, 6 high.
TEST(ProbeImage, ExifOrientationSwapsTheSidesInEveryFormat) {
  const Bytes rgb = test::random_bytes(6 * 4 * 3, 9);
  for (int orientation = 1; orientation <= 8; ++orientation) {
    SCOPED_TRACE(orientation);
    test::JpegSpec spec;
    spec.width = 6, spec.height = 4;
    spec.app1 = test::exif_block(orientation, orientation % 2 == 0);
    test::PngSpec png;
    png.width = 6, png.height = 4;
    png.exif = test::exif_block(orientation, orientation % 2 == 1, false);
    const Bytes webp = test::encode_webp(6, 4, rgb, false, true);
    for (const Bytes& file :
         {test::encode_jpeg(spec, rgb), test::encode_png(png, rgb),
          test::webp_with_exif(webp, 6, 4, test::exif_block(orientation, false))}) {
      const ImageHeader header = probe_image(file, "o");
      const RgbImage image = decode_image(file, "o");
      EXPECT_EQ(header.width, orientation >= 5 ? 4 : 6);
      EXPECT_EQ(header.height, orientation >= 5 ? 6 : 4);
      EXPECT_EQ(header.width, image.width);
      EXPECT_EQ(header.height, image.height);
    }
  }
}

TEST(ProbeImage, FindsAPngExifChunkAfterTheImageData) {
  const Bytes rgb = test::random_bytes(6 * 4 * 3, 10);
  Bytes plain = test::encode_png_rgb(6, 4, rgb);
  // Move IEND back: eXIf (orientation 6) after IDAT, as some writers put it.
  plain.resize(plain.size() - 12);
  test::png_chunk(plain, "eXIf", test::exif_block(6, false, false));
  test::png_chunk(plain, "IEND", {});
  const ImageHeader header = probe_image(plain, "late.png");
  const RgbImage image = decode_image(plain, "late.png");
  EXPECT_EQ(image.width, 4);
  EXPECT_EQ(header.width, image.width);
  EXPECT_EQ(header.height, image.height);
}

TEST(ProbeImage, ReadsHeadersOnly) {
  // A 24 MP PNG: decode_image would inflate 24 MB; probe_image reads the chunk list.
  test::PngSpec spec;
  spec.width = 6000, spec.height = 4000, spec.color_type = PNG_COLOR_TYPE_GRAY;
  const Bytes png = test::encode_png(spec, Bytes(size_t(6000) * 4000, 0));
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(probe_image(png, "big.png").width, 6000);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 0.5);
}

TEST(ProbeImage, RefusesWhatDecodeRefuses) {
  EXPECT_THROW(probe_image(Bytes{}, "empty"), Error);
  EXPECT_THROW(probe_image(Bytes{'G', 'I', 'F', '8', '9', 'a', 0, 0}, "g.gif"), Error);
  const Bytes png = test::encode_png_rgb(4, 4, test::random_bytes(48, 11));
  Bytes crc = png;
  crc[29] ^= 1;  // IHDR's CRC
  EXPECT_THROW(probe_image(crc, "crc.png"), Error);
  EXPECT_THROW(decode_image(crc, "crc.png"), Error);
  Bytes depth = test::png_header(4, 4, 3, 2);  // 3-bit RGB does not exist
  test::png_chunk(depth, "IEND", {});
  EXPECT_THROW(probe_image(depth, "depth.png"), Error);
  EXPECT_THROW(decode_image(depth, "depth.png"), Error);
}

}  // namespace
}  // namespace qwenvl
