// A request's images and videos under one token budget: unchanged when they fit, otherwise all
// downscaled by one factor of their pixels (a video's per-frame limit) to at most the budget, each
// within its own bounds.
#include "runtime/image_token_budget.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace qwenvl {
namespace {

constexpr int64_t kMin = 56 * 56, kMax = 12845056;  // Qwen2.5-VL's defaults

// Images alone.
std::vector<FittedImage> fit(const std::vector<ImageBounds>& images, int64_t budget) {
  return fit_image_token_budget(images, {}, PreprocessConfig{}, budget).images;
}

int64_t total(const std::vector<FittedImage>& images) {
  int64_t t = 0;
  for (const FittedImage& f : images) t += f.tokens;
  return t;
}

TEST(ImageTokenBudget, ImagesThatFitKeepTheirSize) {
  const std::vector<ImageBounds> images{{"a", 960, 1280, kMin, kMax}, {"b", 480, 640, kMin, kMax}};
  for (int64_t budget : {int64_t(0), int64_t(100000)}) {
    const auto fitted = fit(images, budget);
    ASSERT_EQ(fitted.size(), 2u);
    EXPECT_EQ(fitted[0].height, 952);  // smart_resize of 960x1280: multiples of 28
    EXPECT_EQ(fitted[0].width, 1288);
    EXPECT_EQ(fitted[0].tokens, 952 / 28 * (1288 / 28));
    EXPECT_FALSE(fitted[0].downscaled);
    EXPECT_FALSE(fitted[1].downscaled);
  }
}

TEST(ImageTokenBudget, LargerImagesShareTheBudgetInProportionToPixels) {
  const std::vector<ImageBounds> images{{"a", 960, 1280, kMin, kMax}, {"b", 480, 640, kMin, kMax}};
  const int64_t own = total(fit(images, 0));
  for (int64_t budget : {own - 1, own / 2, int64_t(300), int64_t(40)}) {
    const auto fitted = fit(images, budget);
    SCOPED_TRACE(budget);
    EXPECT_LE(total(fitted), budget);
    EXPECT_GT(total(fitted), budget * 7 / 10);  // the largest scale that fits, not far below
    EXPECT_TRUE(fitted[0].downscaled);
    // The first image has four times the pixels of the second, and keeps about that share.
    const double share = double(fitted[0].tokens) / double(fitted[1].tokens);
    EXPECT_GT(share, 2.5);
    EXPECT_LT(share, 6.0);
    for (const FittedImage& f : fitted) {
      EXPECT_EQ(f.height % 28, 0);
      EXPECT_EQ(f.width % 28, 0);
      EXPECT_LE(int64_t(f.height) * f.width, std::max(f.max_pixels, kMin));
    }
  }
}

TEST(ImageTokenBudget, OwnBoundsStillHold) {
  // b's own max_pixels keeps it small; a's min_pixels keeps it from shrinking below its bound.
  const std::vector<ImageBounds> images{{"a", 2000, 2000, 448 * 448, kMax},
                                        {"b", 2000, 2000, kMin, 224 * 224}};
  const auto own = fit(images, 0);
  EXPECT_EQ(own[1].tokens, 64);
  const auto fitted = fit(images, 300);
  EXPECT_LE(total(fitted), 300);
  EXPECT_GE(int64_t(fitted[0].height) * fitted[0].width, 448 * 448);
}

TEST(ImageTokenBudget, ABudgetBelowTheSmallestSizesIsAnError) {
  const std::vector<ImageBounds> images{{"a", 2000, 2000, 448 * 448, kMax}};
  try {
    fit(images, 100);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("256 tokens even at their min_pixels"), std::string::npos)
        << e.what();
  }
}

// A video file's plan as plan_video makes it, from a probe's figures (no file needed).
VideoPlan video_plan(int width, int height, double fps, int64_t frames,
                     const VideoOptions& options = {}) {
  VideoPlan plan;
  plan.path = "v.mp4";
  plan.options = options;
  plan.info.width = plan.width = width;
  plan.info.height = plan.height = height;
  plan.info.fps = fps;
  plan.info.frame_count = frames;
  plan.sampling = plan_video_sampling(plan.info, options, 28);
  return plan;
}

TEST(ImageTokenBudget, AVideoThatFitsKeepsItsPlan) {
  const PreprocessConfig pre;
  const VideoPlan plan = video_plan(1280, 720, 30, 900);  // 30 s: 60 frames, 30 temporal patches
  for (int64_t budget : {int64_t(0), plan.tokens(pre)}) {
    const FittedRequest fitted = fit_image_token_budget({}, {plan}, pre, budget);
    ASSERT_EQ(fitted.videos.size(), 1u);
    EXPECT_FALSE(fitted.videos[0].downscaled);
    EXPECT_EQ(fitted.videos[0].tokens, plan.tokens(pre));
    EXPECT_EQ(fitted.videos[0].height, plan.sampling.resized_height);
    EXPECT_EQ(fitted.videos[0].width, plan.sampling.resized_width);
  }
}

TEST(ImageTokenBudget, AVideoOverTheBudgetGetsALowerFrameLimit) {
  const PreprocessConfig pre;
  const VideoPlan plan = video_plan(1280, 720, 30, 900);
  const int64_t own = plan.tokens(pre);
  for (int64_t budget : {own - 1, own / 2, own / 4}) {
    SCOPED_TRACE(budget);
    const FittedRequest fitted = fit_image_token_budget({}, {plan}, pre, budget);
    const FittedImage& f = fitted.videos[0];
    EXPECT_TRUE(f.downscaled);
    EXPECT_LE(f.tokens, budget);
    EXPECT_GT(f.tokens, budget * 8 / 10);
    EXPECT_LT(f.max_pixels, plan.sampling.max_pixels);
    EXPECT_LE(int64_t(f.height) * f.width, f.max_pixels);
    // The plan with that limit: the same frames, the size and tokens the budget counted.
    VideoPlan lowered = plan;
    limit_video_frame_pixels(lowered, f.max_pixels, pre);
    EXPECT_EQ(lowered.sampling.indices, plan.sampling.indices);
    EXPECT_EQ(lowered.sampling.resized_height, f.height);
    EXPECT_EQ(lowered.sampling.resized_width, f.width);
    EXPECT_EQ(lowered.tokens(pre), f.tokens);
    EXPECT_EQ(lowered.sampling.max_pixels, f.max_pixels);
  }
}

TEST(ImageTokenBudget, ImagesAndVideosShareTheBudgetInProportionToPixels) {
  const PreprocessConfig pre;
  const std::vector<ImageBounds> images{{"a", 480, 640, kMin, kMax}};
  // 4 frames resized as the image is (644x476): 2 temporal patches of its pixels.
  const VideoPlan plan = video_plan(640, 480, 2, 4);
  const FittedRequest own = fit_image_token_budget(images, {plan}, pre, 0);
  ASSERT_EQ(own.videos[0].tokens, 2 * own.images[0].tokens);
  const int64_t budget = (own.images[0].tokens + own.videos[0].tokens) / 2;
  const FittedRequest fitted = fit_image_token_budget(images, {plan}, pre, budget);
  EXPECT_TRUE(fitted.images[0].downscaled);
  EXPECT_TRUE(fitted.videos[0].downscaled);
  EXPECT_LE(fitted.images[0].tokens + fitted.videos[0].tokens, budget);
  // The same frame size as the image, twice over.
  const double share = double(fitted.videos[0].tokens) / double(fitted.images[0].tokens);
  EXPECT_GT(share, 1.6);
  EXPECT_LT(share, 2.4);
}

TEST(ImageTokenBudget, AVideoNeverGoesBelowItsMinPixels) {
  const PreprocessConfig pre;
  const VideoPlan plan = video_plan(1280, 720, 30, 900);  // min_pixels 128·28·28: 128 a frame
  const int64_t floor = 30 * 128;
  const FittedRequest fitted = fit_image_token_budget({}, {plan}, pre, floor);
  EXPECT_LE(fitted.videos[0].tokens, floor);
  EXPECT_GT(fitted.videos[0].tokens, floor * 8 / 10);
  EXPECT_GE(fitted.videos[0].max_pixels, kVideoMinPixels);
  try {
    fit_image_token_budget({}, {plan}, pre, floor / 2);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("images and videos need"), std::string::npos) << what;
    EXPECT_NE(what.find("--fps"), std::string::npos) << what;
    EXPECT_NE(what.find("--max-image-tokens"), std::string::npos) << what;
  }
}

TEST(ImageTokenBudget, ADirectoryVideoKeepsItsImageRule) {
  const PreprocessConfig pre;
  VideoPlan plan;
  plan.path = "frames";
  plan.directory = true;
  plan.height = 960;
  plan.width = 1280;
  plan.sampling.indices = {0, 1, 2, 3};
  plan.sampling.resized_height = 952;  // smart_resize with the image bounds
  plan.sampling.resized_width = 1288;
  plan.sampling.max_pixels = kDirectoryMaxPixels;
  const int64_t own = plan.tokens(pre);
  const FittedImage f = fit_image_token_budget({}, {plan}, pre, own / 4).videos[0];
  EXPECT_TRUE(f.downscaled);
  EXPECT_LE(f.tokens, own / 4);
  EXPECT_EQ(f.height % 28, 0);
  EXPECT_EQ(f.width % 28, 0);
  limit_video_frame_pixels(plan, f.max_pixels, pre);
  EXPECT_EQ(plan.tokens(pre), f.tokens);
  EXPECT_EQ(plan.options.max_pixels, f.max_pixels);
}

}  // namespace
}  // namespace qwenvl
