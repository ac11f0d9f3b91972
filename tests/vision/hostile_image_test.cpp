// Files written to hurt the decoders: sizes that overflow, headers that point outside the file,
// JPEGs of endless scans, truncated files that declare huge pictures. Each must end in one
// qwenvl::Error, quickly, from decode_image and from probe_image alike.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>

#include "core/error.h"
#include "image_writers.h"
#include "vision/decoded_image.h"
#include "vision/image.h"

namespace qwenvl {
namespace {

using test::Bytes;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// decode_image and probe_image both throw Error, whose message contains `says`; returns the
// slower call's seconds.
double expect_refused(const Bytes& file, const std::string& says) {
  double slowest = 0;
  for (bool probe : {false, true}) {
    SCOPED_TRACE(probe ? "probe_image" : "decode_image");
    auto start = std::chrono::steady_clock::now();
    try {
      if (probe)
        probe_image(file, "hostile");
      else
        decode_image(file, "hostile");
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("hostile"), std::string::npos) << e.what();
    }
    slowest = std::max(slowest, seconds_since(start));
  }
  return slowest;
}

TEST(ImageSize, SidesAreCheckedBeforeTheirProduct) {
  using vision_detail::image_size_ok;
  EXPECT_TRUE(image_size_ok(1, 1));
  EXPECT_TRUE(image_size_ok(vision_detail::kMaxImageSide, 3000));
  EXPECT_FALSE(image_size_ok(vision_detail::kMaxImageSide + 1, 1));
  EXPECT_FALSE(image_size_ok(1, vision_detail::kMaxImageSide + 1));
  EXPECT_FALSE(image_size_ok(vision_detail::kMaxImageSide, vision_detail::kMaxImageSide));
  EXPECT_FALSE(image_size_ok(0, 5));
  EXPECT_FALSE(image_size_ok(5, -1));
  // The product of these wraps to a small positive number in 64 bits.
  EXPECT_FALSE(image_size_ok(int64_t(1) << 32, (int64_t(1) << 32) + 1));
  EXPECT_FALSE(image_size_ok(INT64_MAX, INT64_MAX));
}

// A 24-bit BMP of 2x2 pixels whose info header then gets `width` and `height` patched in.
Bytes bmp_with_size(uint32_t width, uint32_t height) {
  test::BmpSpec spec;
  spec.width = 2, spec.height = 2;
  Bytes bmp = test::encode_bmp(spec, {Bytes(6, 10), Bytes(6, 20)});
  for (int i = 0; i < 4; ++i) bmp[18 + i] = uint8_t(width >> 8 * i);
  for (int i = 0; i < 4; ++i) bmp[22 + i] = uint8_t(height >> 8 * i);
  return bmp;
}

TEST(HostileBmp, OverflowingAndNegativeSizesAreRefused) {
  // Read as unsigned, 0xFFFFFFFF x 0xFEFFFFFF made width * height wrap to a negative number that
  // passed the pixel cap, and the decoder read far outside the file.
  expect_refused(bmp_with_size(0xFFFFFFFF, 0xFEFFFFFF), "empty size");
  expect_refused(bmp_with_size(0x7FFFFFFF, 0xFEFFFFFF), "pixels a side");
  expect_refused(bmp_with_size(0x7FFFFFFF, 0x7FFFFFFF), "pixels a side");
  expect_refused(bmp_with_size(0x10000, 1), "pixels a side");
  expect_refused(bmp_with_size(1, 0x10000), "pixels a side");
  expect_refused(bmp_with_size(2, 0x80000000), "pixels a side");  // top-down, -INT32_MIN rows
  expect_refused(bmp_with_size(65535, 65535), "megapixels");
  expect_refused(bmp_with_size(0xFFFFFFFE, 2), "empty size");  // negative width
  expect_refused(bmp_with_size(0, 2), "empty size");
  expect_refused(bmp_with_size(2, 0), "empty size");
  // Sizes that pass the caps but need more pixel data than the file has.
  expect_refused(bmp_with_size(3000, 3000), "truncated");
  expect_refused(bmp_with_size(2, 0xFFFFF000), "truncated");  // top-down, 4096 rows
  // A small negative height still decodes, top-down: the file's first row (20) is now the top.
  Bytes top_down = bmp_with_size(2, uint32_t(-2));
  EXPECT_EQ(decode_image(top_down, "t.bmp").pixels[0], 20);
  EXPECT_EQ(probe_image(top_down, "t.bmp").height, 2);
}

TEST(HostileBmp, OffsetsAndPalettesOutsideTheFileAreRefused) {
  test::BmpSpec spec;
  spec.width = 4, spec.height = 4, spec.bits = 8;
  for (int i = 0; i < 256; ++i) spec.palette.insert(spec.palette.end(), {0, 0, uint8_t(i), 0});
  const Bytes good = test::encode_bmp(spec, std::vector<Bytes>(4, Bytes(4, 7)));
  ASSERT_NO_THROW(decode_image(good, "good.bmp"));
  auto patched = [&](size_t at, uint32_t value) {
    Bytes b = good;
    for (int i = 0; i < 4; ++i) b[at + i] = uint8_t(value >> 8 * i);
    return b;
  };
  expect_refused(patched(10, 0xFFFFFFF0), "truncated");  // pixel data offset
  expect_refused(patched(10, 0x7FFFFFFF), "truncated");
  expect_refused(patched(14, 0xFFFFFFFF), "truncated");  // info header size
  expect_refused(patched(14, 41), "header size");
  expect_refused(patched(46, 0xFFFFFFFF), "palette");  // colours used
  expect_refused(patched(46, 65536), "truncated");
  Bytes bits = good;
  for (uint8_t depth : {0, 2, 16, 64, 255}) {
    bits[28] = depth;
    expect_refused(bits, "pixel depth");
  }
  Bytes rle = patched(30, 1);
  expect_refused(rle, "RLE");
  for (size_t keep : {size_t(2), size_t(17), size_t(30), size_t(60), good.size() - 1}) {
    Bytes cut(good.begin(), good.begin() + keep);
    EXPECT_THROW(decode_image(cut, "cut.bmp"), Error) << keep;
    EXPECT_THROW(probe_image(cut, "cut.bmp"), Error) << keep;
  }
}

// The report: ~120 KB declaring 14000x14000 and 10,000 scans without data took minutes.
TEST(HostileJpeg, EndlessScansAreRefusedQuickly) {
  Bytes file = test::jpeg_headers(14000, 14000, 1);
  for (int s = 0; s < 10000; ++s) test::jpeg_scan(file, 1, 0, 0, 0, 0);
  test::jpeg_end(file);
  auto start = std::chrono::steady_clock::now();
  try {
    decode_image(file, "scans.jpg");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scans"), std::string::npos) << e.what();
  }
  // Bounded by kMaxJpegScanSamples (51 scans of this size): seconds, not minutes.
  EXPECT_LT(seconds_since(start), 60.0);
  // The header alone is fine: probe_image cannot count scans without reading them.
  EXPECT_EQ(probe_image(file, "scans.jpg").width, 14000);
}

TEST(HostileJpeg, ScanCountIsCappedForSmallPictures) {
  for (int scans : {vision_detail::kMaxJpegScans, vision_detail::kMaxJpegScans + 1}) {
    Bytes file = test::jpeg_headers(16, 16, 3);
    for (int s = 0; s < scans; ++s) test::jpeg_scan(file, 3, 0, 0, 0, 0, Bytes(2, 0));
    test::jpeg_end(file);
    if (scans <= vision_detail::kMaxJpegScans) {
      EXPECT_EQ(decode_image(file, "ok.jpg").width, 16);
    } else {
      try {
        decode_image(file, "many.jpg");
        ADD_FAILURE() << "accepted";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("1001 scans"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(HostileJpeg, EndlessWarningsAreRefused) {
  // Refinement scans of coefficients never sent: libjpeg warns for each of the 63, every scan.
  Bytes file = test::jpeg_headers(16, 16, 1);
  test::jpeg_scan(file, 1, 0, 0, 0, 0, Bytes(1, 0));
  for (int s = 0; s < 40; ++s) test::jpeg_scan(file, 1, 1, 63, 1, 0, Bytes(1, 0));
  test::jpeg_end(file);
  try {
    decode_image(file, "warnings.jpg");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("warnings"), std::string::npos) << e.what();
  }
}

TEST(HostileJpeg, HugeDeclaredSizesFailBeforeDecoding) {
  for (auto [w, h] : {std::pair{65500, 65500}, {0, 100}, {100, 0}}) {
    Bytes file = test::jpeg_headers(w, h, 3);
    test::jpeg_scan(file, 3, 0, 0, 0, 0, Bytes(100, 0));
    test::jpeg_end(file);
    expect_refused(file, w == 65500 ? "megapixels" : "hostile");
  }
  // Under the caps, but cut after the header: refused before 588 MB are allocated.
  Bytes cut = test::jpeg_headers(14000, 14000, 3, 0xC0);
  test::jpeg_scan(cut, 3, 0, 63, 0, 0, Bytes(100, 0));
  EXPECT_LT(expect_refused(cut, "truncated"), 1.0);
}

TEST(HostilePng, SizesOverTheCapsAreRefused) {
  Bytes idat_end;
  test::png_chunk(idat_end, "IDAT", Bytes(16, 0));
  test::png_chunk(idat_end, "IEND", {});
  for (auto [w, h] : {std::pair<uint32_t, uint32_t>{0x7FFFFFFF, 1},
                      {1, 0x7FFFFFFF},
                      {70000, 1},
                      {65535, 65535},
                      {0, 1},
                      {0xFFFFFFFF, 0xFFFFFFFF}}) {
    Bytes file = test::png_header(w, h);
    file.insert(file.end(), idat_end.begin(), idat_end.end());
    SCOPED_TRACE(::testing::Message() << w << "x" << h);
    expect_refused(file, "hostile");
  }
}

TEST(HostilePng, TooLittleDataForTheSizeFailsBeforeAllocating) {
  // 14000x14000 RGB needs 588 MB; 100 bytes of deflate can give at most 103 KB.
  Bytes file = test::png_header(14000, 14000);
  test::png_chunk(file, "IDAT", Bytes(100, 0));
  test::png_chunk(file, "IEND", {});
  EXPECT_LT(expect_refused(file, "truncated"), 1.0);
  // A real file is far from the bound: all-zero rows compress about 1000:1.
  Bytes zeros(size_t(2000) * 2000 * 3, 0);
  Bytes png = test::encode_png_rgb(2000, 2000, zeros);
  EXPECT_LT(png.size(), zeros.size() / 200);
  EXPECT_EQ(decode_image(png, "zeros.png").width, 2000);
  EXPECT_EQ(probe_image(png, "zeros.png").width, 2000);
}

// libpng's chunk limits: a compressed text chunk that inflates past kMaxPngChunkBytes is dropped
// (a benign error) instead of being inflated into memory; the picture still decodes.
TEST(HostilePng, TextBombsAreDroppedNotInflated) {
  Bytes rgb = test::random_bytes(4 * 4 * 3, 5);
  Bytes good = test::encode_png_rgb(4, 4, rgb);
  Bytes text = {'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 0};  // keyword, separator, method 0
  Bytes zeros(64 << 20, 'a');
  uLongf packed_size = compressBound(uLong(zeros.size()));
  Bytes packed(packed_size);
  ASSERT_EQ(compress(packed.data(), &packed_size, zeros.data(), uLong(zeros.size())), Z_OK);
  text.insert(text.end(), packed.begin(), packed.begin() + packed_size);
  Bytes file(good.begin(), good.begin() + 33);  // signature + IHDR
  test::png_chunk(file, "zTXt", text);
  file.insert(file.end(), good.begin() + 33, good.end());
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(decode_image(file, "bomb.png").pixels, rgb);
  EXPECT_LT(seconds_since(start), 1.0);
}

// A lossless WebP header alone (the VP8L signature, 14-bit sides minus one, alpha, version 0).
Bytes webp_lossless_header(uint32_t width, uint32_t height, uint32_t riff_extra = 0) {
  uint32_t bits = (width - 1) | (height - 1) << 14;
  Bytes vp8l = {
      0x2F, uint8_t(bits), uint8_t(bits >> 8), uint8_t(bits >> 16), uint8_t(bits >> 24), 0, 0, 0};
  Bytes b = {'R', 'I', 'F', 'F'};
  test::put_le32(b, uint32_t(4 + 8 + vp8l.size() + riff_extra));
  b.insert(b.end(), {'W', 'E', 'B', 'P', 'V', 'P', '8', 'L'});
  test::put_le32(b, uint32_t(vp8l.size()));
  b.insert(b.end(), vp8l.begin(), vp8l.end());
  return b;
}

TEST(HostileWebp, DeclaredSizeIsCheckedBeforeDecoding) {
  expect_refused(webp_lossless_header(16384, 16384), "megapixels");
  // Under the cap but with no pixel data: refused without decoding 200 MP.
  EXPECT_LT(expect_refused(webp_lossless_header(14000, 14000, 1000), "truncated"), 1.0);
  EXPECT_THROW(decode_image(webp_lossless_header(14000, 14000), "empty.webp"), Error);
}

}  // namespace
}  // namespace qwenvl
