// Frame sampling and sizes against qwen-vl-utils' formulas (vision_process.py: smart_nframes,
// calculate_video_frame_range, torch.linspace(...).round(), fetch_video's max_pixels and
// smart_resize). The expected values were computed by those formulas in plain Python (exact
// rational frame indices, which agree with torch's float32 linspace in every case here).
#include <gtest/gtest.h>

#include <numeric>
#include <optional>

#include "core/error.h"
#include "vision/video.h"

namespace qwenvl {
namespace {

struct Case {
  int64_t frames;
  double fps;
  int height, width;
  std::optional<double> sample_fps_option;
  std::optional<int64_t> nframes, min_pixels, max_pixels;
  int64_t total_pixels;
  std::optional<double> start, end;
  int64_t first, last, count;
  double sample_fps;
  int resized_h, resized_w;
  int64_t max_pixels_used, index_sum;
  std::vector<int64_t> head, tail;  // all indices, or the first and last 20
};

const std::vector<Case>& cases() {
  static const std::vector<Case> table = {
      {20, 10.0, 48, 64, {},  {},  {},     {}, 90316800,       {}, {},
       0,  19,   4,  2,  280, 392, 602112, 38, {0, 6, 13, 19}, {}},
      {300,
       30.0,
       480,
       640,
       {},
       {},
       {},
       {},
       90316800,
       {},
       {},
       0,
       299,
       20,
       2,
       476,
       644,
       602112,
       2990,
       {0, 16, 31, 47, 63, 79, 94, 110, 126, 142, 157, 173, 189, 205, 220, 236, 252, 268, 283, 299},
       {}},
      {300,
       30.0,
       1080,
       1920,
       {},
       {},
       {},
       {},
       90316800,
       {},
       {},
       0,
       299,
       20,
       2,
       560,
       1008,
       602112,
       2990,
       {0, 16, 31, 47, 63, 79, 94, 110, 126, 142, 157, 173, 189, 205, 220, 236, 252, 268, 283, 299},
       {}},
      {25, 25.0, 720, 1280, {},  {},   {},     {}, 90316800,       {}, {},
       0,  24,   4,   4,    560, 1008, 602112, 48, {0, 8, 16, 24}, {}},
      {7, 7.0, 240, 320, {},  {},  {},     {}, 90316800,     {}, {},
       0, 6,   4,   4,   280, 392, 602112, 12, {0, 2, 4, 6}, {}},
      {4, 4.0, 240, 320, {},  {},  {},     {}, 90316800,     {}, {},
       0, 3,   4,   4,   280, 392, 602112, 6,  {0, 1, 2, 3}, {}},
      {901,
       29.97,
       1080,
       1920,
       1.0,
       {},
       {},
       {},
       90316800,
       {},
       {},
       0,
       900,
       30,
       0.99789123196448393,
       560,
       1008,
       602112,
       13500,
       {0,   31,  62,  93,  124, 155, 186, 217, 248, 279, 310, 341, 372, 403, 434,
        466, 497, 528, 559, 590, 621, 652, 683, 714, 745, 776, 807, 838, 869, 900},
       {}},
      {18000,
       30.0,
       360,
       640,
       {},
       {},
       {},
       {},
       90316800,
       {},
       {},
       0,
       17999,
       768,
       1.28,
       364,
       644,
       235200,
       6911616,
       {0,   23,  47,  70,  94,  117, 141, 164, 188, 211,
        235, 258, 282, 305, 329, 352, 375, 399, 422, 446},
       {17553, 17577, 17600, 17624, 17647, 17670, 17694, 17717, 17741, 17764,
        17788, 17811, 17835, 17858, 17882, 17905, 17929, 17952, 17976, 17999}},
      {18000,
       30.0,
       720,
       1280,
       {},
       {},
       {},
       {},
       16056320,
       {},
       {},
       0,
       17999,
       768,
       1.28,
       224,
       420,
       105369,
       6911616,
       {0,   23,  47,  70,  94,  117, 141, 164, 188, 211,
        235, 258, 282, 305, 329, 352, 375, 399, 422, 446},
       {17553, 17577, 17600, 17624, 17647, 17670, 17694, 17717, 17741, 17764,
        17788, 17811, 17835, 17858, 17882, 17905, 17929, 17952, 17976, 17999}},
      {600,
       60.0,
       1080,
       1920,
       4.0,
       {},
       {},
       {},
       90316800,
       {},
       {},
       0,
       599,
       40,
       4,
       560,
       1008,
       602112,
       11980,
       {0,   15,  31,  46,  61,  77,  92,  108, 123, 138, 154, 169, 184, 200,
        215, 230, 246, 261, 276, 292, 307, 323, 338, 353, 369, 384, 399, 415,
        430, 445, 461, 476, 491, 507, 522, 538, 553, 568, 584, 599},
       {}},
      {600,
       60.0,
       1080,
       1920,
       {},
       16,
       {},
       {},
       90316800,
       {},
       {},
       0,
       599,
       16,
       1.6000000000000001,
       560,
       1008,
       602112,
       4792,
       {0, 40, 80, 120, 160, 200, 240, 280, 319, 359, 399, 439, 479, 519, 559, 599},
       {}},
      {600, 60.0, 1080,   1920,     {},
       7,   {},   {},     90316800, {},
       {},  0,    599,    8,        0.80000000000000004,
       560, 1008, 602112, 2396,     {0, 86, 171, 257, 342, 428, 513, 599},
       {}},
      {250, 25.0, 576,    720,      {},
       {},  {},   {},     90316800, 2.0,
       6.0, 50,   150,    8,        1.9801980198019802,
       588, 728,  602112, 800,      {50, 64, 79, 93, 107, 121, 136, 150},
       {}},
      {250, 25.0, 576,    720,      {},
       {},  {},   {},     90316800, 3.33,
       {},  84,   249,    12,       1.8072289156626504,
       588, 728,  602112, 1998,     {84, 99, 114, 129, 144, 159, 174, 189, 204, 219, 234, 249},
       {}},
      {250, 25.0, 576,    720,      8.0,
       {},  {},   {},     90316800, {},
       1.5, 0,    37,     12,       7.8947368421052628,
       588, 728,  602112, 222,      {0, 3, 7, 10, 13, 17, 20, 24, 27, 30, 34, 37},
       {}},
      {120,  24.0,   1920,   1080,     {},
       {},   200704, {},     90316800, {},
       {},   0,      119,    10,       2,
       1008, 560,    602112, 595,      {0, 13, 26, 40, 53, 66, 79, 93, 106, 119},
       {}},
      {120, 24.0, 1920,  1080,     {},
       {},  {},   50176, 90316800, {},
       {},  0,    119,   10,       2,
       280, 168,  50176, 595,      {0, 13, 26, 40, 53, 66, 79, 93, 106, 119},
       {}},
      {3000,
       50.0,
       2160,
       3840,
       {},
       {},
       {},
       {},
       3211264,
       {},
       {},
       0,
       2999,
       120,
       2,
       224,
       420,
       105369,
       179940,
       {0,   25,  50,  76,  101, 126, 151, 176, 202, 227,
        252, 277, 302, 328, 353, 378, 403, 428, 454, 479},
       {2520, 2545, 2571, 2596, 2621, 2646, 2671, 2697, 2722, 2747,
        2772, 2797, 2823, 2848, 2873, 2898, 2923, 2949, 2974, 2999}},
      {100, 12.5, 53,     91,       {},
       {},  {},   {},     90316800, {},
       {},  0,    99,     16,       2,
       252, 420,  602112, 792,      {0, 7, 13, 20, 26, 33, 40, 46, 53, 59, 66, 73, 79, 86, 92, 99},
       {}},
      {1500,
       23.976,
       1080,
       1440,
       0.5,
       {},
       {},
       {},
       7840000,
       {},
       {},
       0,
       1499,
       30,
       0.47952,
       616,
       812,
       522666,
       22485,
       {0,   52,  103, 155, 207, 258,  310,  362,  414,  465,  517,  569,  620,  672,  724,
        775, 827, 879, 930, 982, 1034, 1085, 1137, 1189, 1241, 1292, 1344, 1396, 1447, 1499},
       {}},
  };
  return table;
}

VideoInfo info_for(const Case& c) {
  VideoInfo info;
  info.width = c.width;
  info.height = c.height;
  info.fps = c.fps;
  info.frame_count = c.frames;
  return info;
}

TEST(VideoSampling, MatchesQwenVlUtilsOnTwentyCases) {
  ASSERT_EQ(cases().size(), 20u);
  for (const Case& c : cases()) {
    SCOPED_TRACE(testing::Message()
                 << c.frames << " frames at " << c.fps << " fps, " << c.width << "x" << c.height);
    VideoOptions options;
    options.fps = c.sample_fps_option;
    options.nframes = c.nframes;
    options.min_pixels = c.min_pixels;
    options.max_pixels = c.max_pixels;
    options.total_pixels = c.total_pixels;
    options.start = c.start;
    options.end = c.end;
    const VideoSampling s = plan_video_sampling(info_for(c), options, 28);
    EXPECT_EQ(s.first_frame, c.first);
    EXPECT_EQ(s.last_frame, c.last);
    ASSERT_EQ(int64_t(s.indices.size()), c.count);
    EXPECT_DOUBLE_EQ(s.sample_fps, c.sample_fps);
    EXPECT_EQ(s.resized_height, c.resized_h);
    EXPECT_EQ(s.resized_width, c.resized_w);
    EXPECT_EQ(s.max_pixels, c.max_pixels_used);
    EXPECT_EQ(std::accumulate(s.indices.begin(), s.indices.end(), int64_t(0)), c.index_sum);
    const std::vector<int64_t> head(s.indices.begin(), s.indices.begin() + int64_t(c.head.size()));
    EXPECT_EQ(head, c.head);
    const std::vector<int64_t> tail(s.indices.end() - int64_t(c.tail.size()), s.indices.end());
    EXPECT_EQ(tail, c.tail);
  }
}

TEST(VideoSampling, TimestampsOfSampledFramesFollowTheirIndices) {
  VideoInfo info;
  info.width = 64;
  info.height = 48;
  info.fps = 10;
  info.frame_count = 20;
  for (int i = 0; i < 20; ++i) info.frame_seconds.push_back(i / 10.0);
  const VideoSampling s = plan_video_sampling(info, {}, 28);
  ASSERT_EQ(s.indices, (std::vector<int64_t>{0, 6, 13, 19}));
  // second_per_grid_ts = temporal_patch_size / sample_fps = 2 / 2.0
  EXPECT_DOUBLE_EQ(2.0 / s.sample_fps, 1.0);
}

TEST(VideoSampling, SmartNframesRoundsAsPython) {
  VideoOptions o;
  o.nframes = 3;  // round(1.5) = 2 (half to even) -> 4
  EXPECT_EQ(smart_nframes(o, 100, 30), 4);
  o.nframes = 5;  // round(2.5) = 2 -> 4
  EXPECT_EQ(smart_nframes(o, 100, 30), 4);
  o.nframes = 7;  // round(3.5) = 4 -> 8
  EXPECT_EQ(smart_nframes(o, 100, 30), 8);
  o.nframes = {};
  EXPECT_EQ(smart_nframes(o, 3, 30), 2);         // min(max(0.2, 4), floor(3/2)*2 = 2, 3) = 2
  EXPECT_THROW(smart_nframes(o, 1, 30), Error);  // fewer than FRAME_FACTOR frames
  o.nframes = 8;
  EXPECT_THROW(smart_nframes(o, 6, 30), Error);  // more frames asked than there are
}

TEST(VideoSampling, FrameBudgetIsSharedOverTheFrames) {
  VideoOptions o;
  EXPECT_EQ(video_frame_max_pixels(o, 4), kVideoMaxPixels);  // 90316800 / 4 * 2 is more
  EXPECT_EQ(video_frame_max_pixels(o, 768), 235200);         // 90316800 / 768 * 2
  o.total_pixels = 1000;
  EXPECT_EQ(video_frame_max_pixels(o, 8), 105369);  // int(100352 * 1.05) is the floor
  o.max_pixels = 50000;
  EXPECT_EQ(video_frame_max_pixels(o, 8), 50000);  // a smaller max_pixels lowers it further
}

TEST(VideoSampling, LinspaceUsesTorchFloat32Halves) {
  EXPECT_EQ(linspace_indices(0, 9, 4), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(linspace_indices(5, 6, 2), (std::vector<int64_t>{5, 6}));
  // 0.5 ties round to even, as torch.round: linspace(0, 3, 3) = 0, 1.5, 3
  EXPECT_EQ(linspace_indices(0, 3, 3), (std::vector<int64_t>{0, 2, 3}));
  const std::vector<int64_t> long_run = linspace_indices(0, 17999, 768);
  ASSERT_EQ(long_run.size(), 768u);
  EXPECT_EQ(long_run.front(), 0);
  EXPECT_EQ(long_run.back(), 17999);
  for (size_t i = 1; i < long_run.size(); ++i) EXPECT_GT(long_run[i], long_run[i - 1]);
}

TEST(VideoSampling, RangeErrorsAreOneLine) {
  VideoInfo info;
  info.width = 64;
  info.height = 48;
  info.fps = 10;
  info.frame_count = 20;
  VideoOptions o;
  o.start = 1.9;  // frame 19 .. frame 19
  EXPECT_THROW(plan_video_sampling(info, o, 28), Error);
  o.start = 3.0;
  o.end = 2.0;
  EXPECT_THROW(plan_video_sampling(info, o, 28), Error);
  VideoOptions both;
  both.fps = 1;
  both.nframes = 4;
  EXPECT_THROW(check_video_options(both), Error);
  VideoOptions bad_fps;
  bad_fps.fps = 0;
  EXPECT_THROW(check_video_options(bad_fps), Error);
  info.frame_count = 0;
  EXPECT_THROW(plan_video_sampling(info, {}, 28), Error);
}

}  // namespace
}  // namespace qwenvl
