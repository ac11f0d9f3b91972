// smart_resize against values worked out with transformers' Python formula (round() half to
// even, floor/ceil with beta), including the tiny-image and aspect-ratio corners.
#include <gtest/gtest.h>

#include "core/error.h"
#include "vision/preprocess.h"

namespace qwenvl {
namespace {

constexpr int64_t kMin = 3136, kMax = 12845056;

struct Case {
  int height, width;
  int64_t min_pixels, max_pixels;
  int want_h, want_w;
};

TEST(SmartResize, MatchesTransformersTable) {
  const Case cases[] = {
      {300, 451, kMin, kMax, 308, 448},  // chelsea: round(10.71)=11, round(16.1)=16
      {512, 512, kMin, kMax, 504, 504},  // round(18.29) = 18
      {400, 600, kMin, kMax, 392, 588},  // round(14.29)=14, round(21.43)=21
      {517, 333, kMin, kMax, 504, 336},
      {224, 280, kMin, kMax, 224, 280},  // already multiples of 28: unchanged
      {42, 70, kMin, kMax, 56, 56},      // 1.5 -> 2 and 2.5 -> 2: half to even
      {98, 126, kMin, kMax, 112, 112},   // 3.5 -> 4 and 4.5 -> 4
      {14, 14, kMin, kMax, 56, 56},      // 0.5 -> 0: upscaled to min_pixels
      {7, 5, kMin, kMax, 84, 56},        // tiny: beta = sqrt(3136 / 35)
      {27, 27, kMin, kMax, 56, 56},      // 27 * sqrt(3136 / 729) is exactly 56.0
      {1, 1, kMin, kMax, 56, 56},
      {1, 150, kMin, kMax, 28, 700},
      {150, 1, kMin, kMax, 700, 28},
      {3000, 20, kMin, kMax, 2996, 28},      // 150:1 is allowed
      {2000, 10, kMin, kMax, 812, 28},       // exactly 200:1 too
      {3000, 4000, kMin, kMax, 2996, 4004},  // 12 MP fits under 12845056
      {4000, 5000, kMin, kMax, 3192, 4004},  // 20 MP: the max_pixels branch
      {4000, 5000, kMin, 1003520, 896, 1120},
      {5000, 4000, kMin, 1003520, 1120, 896},
      {300, 451, kMin, 50176, 168, 252},
      {512, 512, kMin, 50176, 224, 224},
      {400, 600, 65536, 200704, 364, 532},
      {27, 27, 65536, kMax, 280, 280},  // min_pixels override scales up
      {7, 5, 65536, 65536, 308, 224},   // the ceil may overshoot max_pixels, as upstream
      {3000, 20, kMin, 200704, 2996, 28},
  };
  for (const Case& c : cases) {
    auto [h, w] = smart_resize(c.height, c.width, 28, c.min_pixels, c.max_pixels);
    EXPECT_EQ(h, c.want_h) << c.height << "x" << c.width << " max " << c.max_pixels;
    EXPECT_EQ(w, c.want_w) << c.height << "x" << c.width << " max " << c.max_pixels;
    EXPECT_EQ(h % 28, 0);
    EXPECT_EQ(w % 28, 0);
  }
}

TEST(SmartResize, RefusesExtremeAspectRatiosAndEmptyImages) {
  EXPECT_THROW(smart_resize(3000, 10, 28, kMin, kMax), Error);  // 300:1
  EXPECT_THROW(smart_resize(10, 3000, 28, kMin, kMax), Error);
  EXPECT_NO_THROW(smart_resize(2000, 10, 28, kMin, kMax));  // exactly 200:1 is allowed
  EXPECT_THROW(smart_resize(2001, 10, 28, kMin, kMax), Error);
  EXPECT_THROW(smart_resize(0, 10, 28, kMin, kMax), Error);
  EXPECT_THROW(smart_resize(10, -1, 28, kMin, kMax), Error);
  EXPECT_THROW(smart_resize(100, 100, 28, kMin, 0), Error);
}

TEST(SmartResize, StaysWithinBudget) {
  for (int h = 1; h < 3000; h += 37) {
    for (int w = 1; w < 3000; w += 53) {
      if (double(std::max(h, w)) / std::min(h, w) > 200) continue;
      auto [rh, rw] = smart_resize(h, w, 28, kMin, 1003520);
      ASSERT_LE(int64_t(rh) * rw, 1003520) << h << "x" << w;
      ASSERT_GE(int64_t(rh) * rw, kMin) << h << "x" << w;
    }
  }
}

}  // namespace
}  // namespace qwenvl
