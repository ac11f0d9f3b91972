// A request's images under one token budget: unchanged when they fit, otherwise all downscaled by
// one factor of their pixels to at most the budget, each within its own bounds.
#include "runtime/image_token_budget.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace qwenvl {
namespace {

constexpr int64_t kMin = 56 * 56, kMax = 12845056;  // Qwen2.5-VL's defaults

int64_t total(const std::vector<FittedImage>& images) {
  int64_t t = 0;
  for (const FittedImage& f : images) t += f.tokens;
  return t;
}

TEST(ImageTokenBudget, ImagesThatFitKeepTheirSize) {
  const std::vector<ImageBounds> images{{"a", 960, 1280, kMin, kMax}, {"b", 480, 640, kMin, kMax}};
  for (int64_t budget : {int64_t(0), int64_t(100000)}) {
    const auto fitted = fit_image_token_budget(images, 14, 2, budget);
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
  const int64_t own = total(fit_image_token_budget(images, 14, 2, 0));
  for (int64_t budget : {own - 1, own / 2, int64_t(300), int64_t(40)}) {
    const auto fitted = fit_image_token_budget(images, 14, 2, budget);
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
  const auto own = fit_image_token_budget(images, 14, 2, 0);
  EXPECT_EQ(own[1].tokens, 64);
  const auto fitted = fit_image_token_budget(images, 14, 2, 300);
  EXPECT_LE(total(fitted), 300);
  EXPECT_GE(int64_t(fitted[0].height) * fitted[0].width, 448 * 448);
}

TEST(ImageTokenBudget, ABudgetBelowTheSmallestSizesIsAnError) {
  const std::vector<ImageBounds> images{{"a", 2000, 2000, 448 * 448, kMax}};
  try {
    fit_image_token_budget(images, 14, 2, 100);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("256 tokens even at their min_pixels"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace qwenvl
