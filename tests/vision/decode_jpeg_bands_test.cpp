// JPEG decoding in bands (src/vision/jpeg_bands.h) against the single decoder: every fixture JPEG
// and synthetic files of every sampling layout, split into 2, 3, 5 and 7 bands, must give the
// same pixels and EXIF bytes, and broken files the same error; plus the band plan itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/thread_pool.h"
#include "image_writers.h"
#include "vision/image.h"
#include "vision/jpeg_bands.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;
using test::Bytes;
using vision_detail::decode_jpeg_in_bands;
using vision_detail::DecodedImage;

const int kBandCounts[] = {2, 3, 5, 7};

// A smooth field plus noise: real entropy-coded data in every block, unlike a flat test card.
Bytes noisy_samples(int width, int height, int components, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 12.0f);
  Bytes out(size_t(width) * height * components);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < components; ++c) {
        float v = 128 + 90 * std::sin(0.05f * x * (c + 1) + 0.03f * y) + noise(rng);
        out[(size_t(y) * width + x) * components + c] = uint8_t(std::clamp(v, 0.0f, 255.0f));
      }
  return out;
}

// Output rows per iMCU row of a single-scan file; 0 for a progressive or multi-scan one.
int rows_per_imcu_row(const Bytes& jpeg) {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, jpeg.data(), static_cast<unsigned long>(jpeg.size()));
  jpeg_read_header(&cinfo, TRUE);
  int rows = jpeg_has_multiple_scans(&cinfo) ? 0 : cinfo.max_v_samp_factor * DCTSIZE;
  jpeg_destroy_decompress(&cinfo);
  return rows;
}

int imcu_rows(const DecodedImage& image, int rows_per_imcu_row) {
  return (image.height + rows_per_imcu_row - 1) / rows_per_imcu_row;
}

// Decodes `jpeg` with the single decoder and with every band count on `pool`; all must agree.
// A single-scan file must really be split as asked (capped by its iMCU rows), a progressive one
// must stay with the single decoder.
void expect_bands_match(const Bytes& jpeg, const std::string& label, ThreadPool& pool) {
  SCOPED_TRACE(label);
  const int rows = rows_per_imcu_row(jpeg);
  int used = 0;
  DecodedImage single = decode_jpeg_in_bands(jpeg, label, 1, pool, &used);
  ASSERT_EQ(used, 1);
  ASSERT_EQ(single.pixels.size(), size_t(single.width) * single.height * 3);
  for (int bands : kBandCounts) {
    DecodedImage banded = decode_jpeg_in_bands(jpeg, label, bands, pool, &used);
    if (rows > 0)
      EXPECT_EQ(used, std::min(bands, imcu_rows(single, rows))) << bands << " bands";
    else
      EXPECT_EQ(used, 1) << bands << " bands";
    EXPECT_EQ(banded.width, single.width);
    EXPECT_EQ(banded.height, single.height);
    EXPECT_EQ(banded.channels, single.channels);
    EXPECT_TRUE(banded.pixels == single.pixels) << bands << " bands: pixels differ";
    EXPECT_TRUE(banded.exif == single.exif) << bands << " bands: exif differs";
  }
  DecodedImage automatic = vision_detail::decode_jpeg(jpeg, label);
  EXPECT_TRUE(automatic.pixels == single.pixels) << "decode_jpeg's own choice: pixels differ";
  EXPECT_TRUE(automatic.exif == single.exif) << "decode_jpeg's own choice: exif differs";
}

// The error message of decoding `jpeg`, or "" if it decodes; with the pixels when it does.
std::string outcome(const Bytes& jpeg, int bands, ThreadPool& pool, Bytes* pixels) {
  try {
    *pixels = decode_jpeg_in_bands(jpeg, "broken.jpg", bands, pool).pixels;
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(DecodeJpegBands, EveryFixtureMatchesTheSingleDecoder) {
  ThreadPool pool(8);  // one thread per band, whatever this machine has
  const fs::path images = fs::path(QWENVL_FIXTURES_DIR) / "images";
  int files = 0, progressive = 0, with_exif = 0;
  for (const auto& entry : fs::directory_iterator(images)) {
    if (entry.path().extension() != ".jpg") continue;
    const std::string name = entry.path().filename().string();
    Bytes jpeg = read_image_file(entry.path().string());
    expect_bands_match(jpeg, name, pool);
    progressive += rows_per_imcu_row(jpeg) == 0;
    with_exif += !vision_detail::decode_jpeg(jpeg, name).exif.empty();
    ++files;
  }
  EXPECT_GE(files, 12);  // astronaut*, chelsea*, coffee*, exif3/6/8, large_5000x4000, odd_333x517
  EXPECT_GE(progressive, 1);
  EXPECT_GE(with_exif, 3);
}

TEST(DecodeJpegBands, EverySamplingLayoutMatches) {
  ThreadPool pool(8);
  struct Case {
    const char* label;
    std::vector<std::pair<int, int>> sampling;  // Y (or C), then the others
  };
  const Case cases[] = {
      {"4:4:4", {{1, 1}, {1, 1}, {1, 1}}},        {"4:2:2", {{2, 1}, {1, 1}, {1, 1}}},
      {"4:4:0", {{1, 2}, {1, 1}, {1, 1}}},        {"4:2:0", {{2, 2}, {1, 1}, {1, 1}}},
      {"4:1:1", {{4, 1}, {1, 1}, {1, 1}}},        {"1x4", {{1, 4}, {1, 1}, {1, 1}}},
      {"4x2", {{4, 2}, {1, 1}, {1, 1}}},          {"2x4", {{2, 4}, {1, 1}, {1, 1}}},
      {"3x2", {{3, 2}, {1, 1}, {1, 1}}},          {"1x3", {{1, 3}, {1, 1}, {1, 1}}},
      {"mixed chroma", {{2, 2}, {1, 2}, {2, 1}}}, {"chroma above luma", {{1, 1}, {2, 2}, {1, 1}}},
  };
  int seed = 0;
  for (const Case& c : cases) {
    for (auto [w, h] : {std::pair{203, 333}, std::pair{64, 97}}) {
      test::JpegSpec spec;
      spec.width = w, spec.height = h, spec.quality = 85, spec.sampling = c.sampling;
      Bytes jpeg = test::encode_jpeg(spec, noisy_samples(w, h, 3, ++seed));
      expect_bands_match(
          jpeg, std::string(c.label) + " " + std::to_string(w) + "x" + std::to_string(h), pool);
    }
  }
}

TEST(DecodeJpegBands, GreyCmykYcckRestartsArithmeticAndExifMatch) {
  ThreadPool pool(8);
  const int w = 251, h = 299;
  struct Case {
    const char* label;
    test::JpegSpec spec;
  };
  std::vector<Case> cases;
  auto add = [&](const char* label, int components, J_COLOR_SPACE in_space, auto&& tweak) {
    test::JpegSpec spec;
    spec.width = w, spec.height = h, spec.components = components, spec.in_space = in_space;
    spec.quality = 85;
    tweak(spec);
    cases.push_back({label, spec});
  };
  add("grey", 1, JCS_GRAYSCALE, [](test::JpegSpec&) {});
  add("grey sampled 2x2", 1, JCS_GRAYSCALE, [](test::JpegSpec& s) { s.sampling = {{2, 2}}; });
  add("cmyk", 4, JCS_CMYK, [](test::JpegSpec&) {});
  add("cmyk 4:2:0", 4, JCS_CMYK, [](test::JpegSpec& s) {
    s.sampling = {{2, 2}, {1, 1}, {1, 1}, {2, 2}};
  });
  add("ycck 4:2:0", 4, JCS_CMYK, [](test::JpegSpec& s) {
    s.jpeg_space = JCS_YCCK;
    s.sampling = {{2, 2}, {1, 1}, {1, 1}, {2, 2}};
  });
  add("restart every 7 MCUs", 3, JCS_RGB, [](test::JpegSpec& s) { s.restart_interval = 7; });
  add("arithmetic 4:2:0", 3, JCS_RGB, [](test::JpegSpec& s) { s.arithmetic = true; });
  add("arithmetic 4:2:2 restarts", 3, JCS_RGB, [](test::JpegSpec& s) {
    s.arithmetic = true, s.restart_interval = 5, s.sampling = {{2, 1}, {1, 1}, {1, 1}};
  });
  add("exif", 3, JCS_RGB, [](test::JpegSpec& s) { s.app1 = test::exif_block(6, true); });
  add("progressive", 3, JCS_RGB, [](test::JpegSpec& s) { s.progressive = true; });
  add("progressive grey", 1, JCS_GRAYSCALE, [](test::JpegSpec& s) { s.progressive = true; });
  int seed = 100;
  for (const Case& c : cases) {
    Bytes jpeg = test::encode_jpeg(c.spec, noisy_samples(w, h, c.spec.components, ++seed));
    expect_bands_match(jpeg, c.label, pool);
  }
}

// With fewer threads than bands (or a busy pool) consecutive bands share one decompressor.
TEST(DecodeJpegBands, FewerThreadsThanBandsStillMatch) {
  test::JpegSpec spec;
  spec.width = 320, spec.height = 480;
  Bytes jpeg = test::encode_jpeg(spec, noisy_samples(320, 480, 3, 7));
  ThreadPool wide(8);
  DecodedImage single = decode_jpeg_in_bands(jpeg, "x.jpg", 1, wide);
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int bands : kBandCounts)
      EXPECT_TRUE(decode_jpeg_in_bands(jpeg, "x.jpg", bands, pool).pixels == single.pixels)
          << threads << " threads, " << bands << " bands";
  }
}

TEST(DecodeJpegBands, TruncatedAndCorruptFilesFailTheSameWay) {
  ThreadPool pool(8);
  test::JpegSpec spec;
  spec.width = 400, spec.height = 300;
  Bytes jpeg = test::encode_jpeg(spec, noisy_samples(400, 300, 3, 11));
  std::vector<size_t> cuts = {jpeg.size() - 1, jpeg.size() - 2};
  for (int percent = 5; percent < 100; percent += 10) cuts.push_back(jpeg.size() * percent / 100);
  for (size_t keep : cuts) {
    Bytes cut(jpeg.begin(), jpeg.begin() + keep);
    Bytes pixels;
    std::string single = outcome(cut, 1, pool, &pixels);
    EXPECT_NE(single.find("Premature end of JPEG file"), std::string::npos) << keep;
    for (int bands : kBandCounts) EXPECT_EQ(outcome(cut, bands, pool, &pixels), single) << keep;
  }
  int decoded = 0, failed = 0;
  for (uint32_t seed = 0; seed < 40; ++seed) {
    Bytes bad = jpeg;
    Bytes noise = test::random_bytes(8, seed);
    std::copy(noise.begin(), noise.end(), bad.begin() + 600 + (seed * 977) % (bad.size() - 700));
    Bytes single_pixels, banded_pixels;
    std::string single = outcome(bad, 1, pool, &single_pixels);
    for (int bands : kBandCounts) {
      EXPECT_EQ(outcome(bad, bands, pool, &banded_pixels), single) << seed;
      if (single.empty()) {
        EXPECT_TRUE(banded_pixels == single_pixels) << seed << ", " << bands;
      }
    }
    ++(single.empty() ? decoded : failed);
  }
  EXPECT_GT(decoded, 0);  // entropy damage mostly decodes (to garbage, identically)
}

TEST(JpegBandPlan, StartsAreIncreasingImcuRowsShrinkingDownTheImage) {
  for (int height : {1, 15, 16, 17, 300, 517, 4000})
    for (int rows : {8, 16, 32})
      for (int bands : {1, 2, 3, 5, 7, 16})
        for (double entropy : {0.1, 0.45, 0.7}) {
          SCOPED_TRACE(::testing::Message() << height << " rows, " << rows << "-row iMCUs, "
                                            << bands << " bands, e " << entropy);
          std::vector<int> starts = vision_detail::jpeg_band_starts(height, rows, bands, entropy);
          const int imcu_rows = (height + rows - 1) / rows;
          ASSERT_EQ(int(starts.size()), std::min(bands, imcu_rows));
          EXPECT_EQ(starts[0], 0);
          for (size_t k = 1; k < starts.size(); ++k) {
            EXPECT_EQ(starts[k] % rows, 0);
            EXPECT_GT(starts[k], starts[k - 1]);
            EXPECT_LT(starts[k], height);
          }
          if (height == 4000 && starts.size() >= 3) {  // room to size them: earlier bands bigger
            EXPECT_GT(starts[1] - starts[0], height - starts.back());
          }
        }
}

TEST(JpegBandPlan, BandCountFollowsSizeThreadsAndEntropy) {
  using vision_detail::jpeg_band_count;
  using vision_detail::kMinBandedJpegPixels;
  EXPECT_EQ(jpeg_band_count(kMinBandedJpegPixels - 1, 0.4, 16), 1);
  EXPECT_EQ(jpeg_band_count(20'000'000, 0.4, 1), 1);
  EXPECT_EQ(jpeg_band_count(20'000'000, 0.4, 2), 2);
  EXPECT_LE(jpeg_band_count(20'000'000, 0.05, 64), 8);
  // A file that is mostly entropy decoding gains little from more bands, so gets fewer.
  EXPECT_GT(jpeg_band_count(20'000'000, 0.35, 16), jpeg_band_count(20'000'000, 0.7, 16));
  EXPECT_GE(jpeg_band_count(20'000'000, 0.7, 16), 2);

  using vision_detail::jpeg_entropy_fraction;
  double sparse = jpeg_entropy_fraction(1'500'000, 20'000'000);  // large_5000x4000.jpg: 0.45
  double dense = jpeg_entropy_fraction(3'700'000, 12'000'000);   // q90 photo-like: 0.70
  EXPECT_NEAR(sparse, 0.45, 0.1);
  EXPECT_NEAR(dense, 0.70, 0.1);
}

}  // namespace
}  // namespace qwenvl
