// The vision layer against transformers on real files: tests/fixtures/images/expected.json
// (written by tools/make_reference.py from tools/reference/image_cases.py). For each case the
// decoded + resized RGB must equal Pillow's exactly (the fixture keeps a hash of Pillow's bytes),
// the grid must match, pixel_values must agree within 1e-5 (all rows, or the listed `rows`), and
// the cases transformers refuses must throw.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/npy.h"
#include "core/error.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kImages = fs::path(QWENVL_FIXTURES_DIR) / "images";

json load_expected() {
  std::ifstream in(kImages / "expected.json");
  return json::parse(in);
}

PreprocessConfig config_for(const json& c) {
  PreprocessConfig config;
  config.min_pixels =
      c.value("min_pixels", json()).is_null() ? 3136 : c["min_pixels"].get<int64_t>();
  config.max_pixels =
      c.value("max_pixels", json()).is_null() ? 12845056 : c["max_pixels"].get<int64_t>();
  return config;
}

// FNV-1a (64-bit) of the bytes, as 16 lowercase hex digits: tools/reference/images_ref.py's
// rgb_hash of the same HWC bytes.
std::string fnv1a64_hex(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001B3ull;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

std::string label(const json& c) {
  return c["file"].get<std::string>() + " (min " + c.value("min_pixels", json()).dump() + ", max " +
         c.value("max_pixels", json()).dump() + ")";
}

TEST(FixtureImages, MatchTransformers) {
  if (!fs::exists(kImages / "expected.json"))
    GTEST_SKIP() << kImages / "expected.json"
                 << " not generated yet (tools/make_reference.py)";
  json cases = load_expected();
  ASSERT_TRUE(cases.is_array());
  ASSERT_GE(cases.size(), 22u);
  int checked = 0;
  for (const json& c : cases) {
    SCOPED_TRACE(label(c));
    const PreprocessConfig config = config_for(c);
    const fs::path input = kImages / c["file"].get<std::string>();
    if (c.contains("error")) {
      EXPECT_THROW(preprocess_image(load_image(input.string()), config), Error)
          << "transformers refuses it: " << c["error"];
      ++checked;
      continue;
    }
    RgbImage image;
    try {
      image = load_image(input.string());
    } catch (const Error& e) {
      ADD_FAILURE() << "decode failed: " << e.what();
      continue;
    }
    const int factor = config.patch_size * config.merge_size;
    auto [h, w] =
        smart_resize(image.height, image.width, factor, config.min_pixels, config.max_pixels);
    EXPECT_EQ(h, c["resized_hw"][0].get<int>());
    EXPECT_EQ(w, c["resized_hw"][1].get<int>());
    RgbImage resized = resize_bicubic(image, w, h);

    // Pillow's resized RGB, kept as a hash: a difference names the image and its size, not the
    // first differing pixel (Pillow's Image.resize(BICUBIC) of the same file shows where).
    ASSERT_EQ(resized.pixels.size(), size_t(h) * size_t(w) * 3);
    EXPECT_EQ(fnv1a64_hex(resized.pixels), c["rgb_fnv1a64"].get<std::string>())
        << "the resized " << w << "x" << h << " RGB differs from Pillow's";

    ImagePatches patches = patchify_image(resized, config);
    EXPECT_EQ(patches.grid_t, c["grid_thw"][0].get<int64_t>());
    EXPECT_EQ(patches.grid_h, c["grid_thw"][1].get<int64_t>());
    EXPECT_EQ(patches.grid_w, c["grid_thw"][2].get<int64_t>());
    const test::Npy npy =
        test::read_npy((kImages / c["pixel_values_npy"].get<std::string>()).string());
    ASSERT_EQ(npy.shape.size(), 2u);
    const int64_t cols = patches.pixel_values.dim(1);
    ASSERT_EQ(npy.shape[1], cols);
    std::vector<int64_t> rows;
    if (c.contains("rows") && !c["rows"].is_null()) {
      rows = c["rows"].get<std::vector<int64_t>>();
    } else {
      ASSERT_EQ(npy.shape[0], patches.pixel_values.dim(0));
      for (int64_t r = 0; r < npy.shape[0]; ++r) rows.push_back(r);
    }
    ASSERT_EQ(int64_t(rows.size()), npy.shape[0]);
    ASSERT_EQ(npy.descr, "<f4");
    const std::vector<float> want = npy.as<float>();
    const float* got = patches.pixel_values.data<float>();
    double worst = 0;
    int64_t worst_at = -1;
    for (size_t i = 0; i < rows.size(); ++i) {
      ASSERT_LT(rows[i], patches.pixel_values.dim(0));
      for (int64_t j = 0; j < cols; ++j) {
        double d = std::fabs(double(got[rows[i] * cols + j]) - want[i * cols + j]);
        if (d > worst) worst = d, worst_at = rows[i] * cols + j;
      }
    }
    EXPECT_LE(worst, 1e-5) << "pixel_values differ by " << worst << " at flat index " << worst_at;
    ++checked;
  }
  EXPECT_EQ(checked, int(cases.size()));
}

}  // namespace
}  // namespace qwenvl
