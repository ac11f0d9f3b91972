// patchify_image / preprocess_image / load_preprocess_config: the processor's element order
// checked through the 10-d reshape + transpose written out literally, the float arithmetic
// checked against transformers' order of operations, and the config file variants.
#include "vision/preprocess.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/half.h"

namespace qwenvl {
namespace {

RgbImage random_image(int width, int height, uint32_t seed) {
  std::mt19937 rng(seed);
  RgbImage image;
  image.width = width, image.height = height;
  image.pixels.resize(size_t(width) * height * 3);
  for (auto& p : image.pixels) p = uint8_t(rng());
  return image;
}

// transformers: rescale in float64 then cast to float32; normalize in float32.
float normalized(uint8_t v, int c, const PreprocessConfig& config) {
  float x = float(double(v) * config.rescale_factor);
  return (x - config.image_mean[c]) / config.image_std[c];
}

TEST(Patchify, MatchesTheProcessorsReshapeAndTranspose) {
  PreprocessConfig config;
  const int P = config.patch_size, M = config.merge_size, T = config.temporal_patch_size;
  RgbImage image = random_image(4 * 28, 3 * 28, 42);
  ImagePatches out = patchify_image(image, config);
  const int gh = image.height / P, gw = image.width / P;
  EXPECT_EQ(out.grid_t, 1);
  EXPECT_EQ(out.grid_h, gh);
  EXPECT_EQ(out.grid_w, gw);
  ASSERT_EQ(out.pixel_values.dim(0), gh * gw);
  ASSERT_EQ(out.pixel_values.dim(1), 3 * T * P * P);
  const float* pv = out.pixel_values.data<float>();
  // Output index (bh, bw, mh, mw, c, t, ph, pw) of the transposed array
  // (grid_t, tp, c, gh/M, M, P, gw/M, M, P).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8) (batch dropped).
  int64_t flat = 0;
  for (int bh = 0; bh < gh / M; ++bh)
    for (int bw = 0; bw < gw / M; ++bw)
      for (int mh = 0; mh < M; ++mh)
        for (int mw = 0; mw < M; ++mw)
          for (int c = 0; c < 3; ++c)
            for (int t = 0; t < T; ++t)
              for (int ph = 0; ph < P; ++ph)
                for (int pw = 0; pw < P; ++pw, ++flat) {
                  int y = (bh * M + mh) * P + ph, x = (bw * M + mw) * P + pw;
                  uint8_t v = image.pixels[(size_t(y) * image.width + x) * 3 + c];
                  ASSERT_EQ(pv[flat], normalized(v, c, config)) << flat;
                }
  EXPECT_EQ(flat, out.pixel_values.numel());
}

TEST(Patchify, FloatArithmeticFollowsNumpy) {
  PreprocessConfig config;
  // The header's float literals are what np.array(python_floats, dtype=float32) gives.
  EXPECT_EQ(config.image_mean[0], float(0.48145466));
  EXPECT_EQ(config.image_mean[1], float(0.4578275));
  EXPECT_EQ(config.image_mean[2], float(0.40821073));
  EXPECT_EQ(config.image_std[0], float(0.26862954));
  EXPECT_EQ(config.image_std[1], float(0.26130258));
  EXPECT_EQ(config.image_std[2], float(0.27577711));
  RgbImage image;
  image.width = image.height = 28;
  image.pixels.assign(28 * 28 * 3, 0);
  for (int v = 0; v < 256; ++v) image.pixels[v * 3] = uint8_t(v);  // red 0..255 in the first rows
  ImagePatches out = patchify_image(image, config);
  const float* pv = out.pixel_values.data<float>();
  // Pixel (y, x) with y < 14, x < 14 is in patch 0; red channel first.
  for (int v = 0; v < 196; ++v) {
    int y = v / 28, x = v % 28;
    if (x >= 14) continue;
    float x32 = float(double(v) * (1.0 / 255.0));
    EXPECT_EQ(pv[y * 14 + x], (x32 - float(0.48145466)) / float(0.26862954)) << v;
  }
  // float(1/255) instead of the double would be off by an ulp for some values; make sure the
  // test above would notice the difference somewhere.
  int differs = 0;
  for (int v = 0; v < 256; ++v)
    differs += float(double(v) * (1.0 / 255.0)) != float(float(v) * float(1.0 / 255.0));
  EXPECT_GT(differs, 0);
}

TEST(Preprocess, ResizesThenPatchifies) {
  PreprocessConfig config;
  config.max_pixels = 12845056;
  RgbImage image = random_image(451, 300, 7);
  ImagePatches out = preprocess_image(image, config);
  EXPECT_EQ(out.grid_h, 308 / 14);
  EXPECT_EQ(out.grid_w, 448 / 14);
  ImagePatches manual = patchify_image(resize_bicubic(image, 448, 308), config);
  ASSERT_EQ(out.pixel_values.nbytes(), manual.pixel_values.nbytes());
  EXPECT_EQ(std::memcmp(out.pixel_values.data(), manual.pixel_values.data(),
                        manual.pixel_values.nbytes()),
            0);
  EXPECT_EQ(out.tokens(), 22 * 32);
}

// A bf16 / fp16 model rounds the processor's float32 values to its dtype before the patch
// embedding (torch's .to(dtype), nearest even); asking patchify for that dtype gives exactly
// those numbers.
TEST(Patchify, HalfDtypesAreTheFloatValuesRounded) {
  PreprocessConfig config;
  RgbImage image = random_image(3 * 28, 2 * 28, 11);
  const ImagePatches f32 = patchify_image(image, config);
  for (DType dtype : {DType::BF16, DType::F16}) {
    const ImagePatches half = patchify_image(image, config, dtype);
    ASSERT_EQ(half.pixel_values.dtype(), dtype);
    ASSERT_EQ(half.pixel_values.shape(), f32.pixel_values.shape());
    const float* want = f32.pixel_values.data<float>();
    const uint16_t* got = static_cast<const uint16_t*>(half.pixel_values.data());
    for (int64_t i = 0; i < f32.pixel_values.numel(); ++i)
      ASSERT_EQ(got[i], dtype == DType::BF16 ? float_to_bf16(want[i]) : float_to_fp16(want[i]))
          << dtype_name(dtype) << " element " << i;
  }
  EXPECT_THROW(patchify_image(image, config, DType::I32), Error);
}

TEST(Preprocess, RejectsSidesThatAreNotMultiples) {
  PreprocessConfig config;
  EXPECT_THROW(patchify_image(random_image(28, 30, 1), config), Error);
}

class ConfigDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() /
        ("qwenvl_vision_cfg_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::filesystem::path dir_;
};

TEST_F(ConfigDir, ReadsQwen25VlPreprocessorConfig) {
  write("preprocessor_config.json", R"({
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
    "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor"})");
  PreprocessConfig config = load_preprocess_config(dir_.string());
  EXPECT_EQ(config.min_pixels, 3136);
  EXPECT_EQ(config.max_pixels, 12845056);
  EXPECT_EQ(config.image_std[2], float(0.27577711));
  EXPECT_EQ(config.rescale_factor, 1.0 / 255.0);
}

TEST_F(ConfigDir, SizeIsOverriddenByMinMaxPixels) {
  write("preprocessor_config.json",
        R"({"size": {"shortest_edge": 1000, "longest_edge": 2000}, "max_pixels": 5000,
            "rescale_factor": 0.00392156862745098, "image_mean": 0.5, "image_std": [1, 2, 4]})");
  PreprocessConfig config = load_preprocess_config(dir_.string());
  EXPECT_EQ(config.min_pixels, 1000);
  EXPECT_EQ(config.max_pixels, 5000);
  EXPECT_EQ(config.rescale_factor, 0.00392156862745098);
  EXPECT_EQ(config.image_mean[1], 0.5f);
  EXPECT_EQ(config.image_std[2], 4.0f);
}

TEST_F(ConfigDir, ProcessorConfigFallbackAndErrors) {
  EXPECT_THROW(load_preprocess_config(dir_.string()), Error);  // no file at all
  write("processor_config.json", R"({"image_processor": {"max_pixels": 200704}})");
  EXPECT_EQ(load_preprocess_config(dir_.string()).max_pixels, 200704);
  write("preprocessor_config.json", R"({"resample": 2})");
  EXPECT_THROW(load_preprocess_config(dir_.string()), Error);
  write("preprocessor_config.json", R"({"do_normalize": false})");
  EXPECT_THROW(load_preprocess_config(dir_.string()), Error);
  write("preprocessor_config.json", R"({"image_std": [1, 0, 1]})");
  EXPECT_THROW(load_preprocess_config(dir_.string()), Error);
  write("preprocessor_config.json", R"({"patch_size": "14"})");
  EXPECT_THROW(load_preprocess_config(dir_.string()), Error);
  write("preprocessor_config.json", "{not json");
  EXPECT_THROW(load_preprocess_config(dir_.string()), Error);
}

}  // namespace
}  // namespace qwenvl
