// get_rope_index on prompts worked out by hand.
#include "model/rope_index.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace qwenvl {
namespace {

constexpr int32_t P = 151655;  // <|image_pad|>
constexpr int32_t V = 151656;  // <|video_pad|>
constexpr int32_t S = 151652;  // <|vision_start|>
constexpr int32_t E = 151653;  // <|vision_end|>

std::vector<int64_t> row(const MropePositions& p, int r) {
  return {p.rows.begin() + r * p.length, p.rows.begin() + (r + 1) * p.length};
}

TEST(RopeIndex, TextOnlyIsArange) {
  MropePositions p = rope_index({10, 11, 12, 13}, {});
  EXPECT_EQ(p.length, 4);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(row(p, r), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(p.rope_delta, 0);
}

TEST(RopeIndex, ImageGetsGridCoordinates) {
  // Grid 1x4x6 patches -> 2x3 merged units = 6 pads, starting at position 3.
  RopeIndexInputs in;
  in.image_grids = {{1, 4, 6}};
  MropePositions p = rope_index({1, 2, S, P, P, P, P, P, P, E, 3}, in);
  EXPECT_EQ(row(p, 0), (std::vector<int64_t>{0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7}));
  EXPECT_EQ(row(p, 1), (std::vector<int64_t>{0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7}));
  EXPECT_EQ(row(p, 2), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7}));
  EXPECT_EQ(p.rope_delta, 8 - 11);
  // The next token continues at max + 1 = 8 = cache position 11 + delta.
  EXPECT_EQ(decode_position(11, p.rope_delta), 8);
}

TEST(RopeIndex, TwoImagesContinueAfterEachOther) {
  RopeIndexInputs in;
  in.image_grids = {{1, 2, 4}, {1, 4, 2}};  // 1x2 units, then 2x1 units
  MropePositions p = rope_index({S, P, P, E, S, P, P, E}, in);
  EXPECT_EQ(row(p, 0), (std::vector<int64_t>{0, 1, 1, 3, 4, 5, 5, 7}));
  EXPECT_EQ(row(p, 1), (std::vector<int64_t>{0, 1, 1, 3, 4, 5, 6, 7}));
  EXPECT_EQ(row(p, 2), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 5, 7}));
  EXPECT_EQ(p.rope_delta, 0);
}

TEST(RopeIndex, VideoFramesSpacedBySecondsTimesTokensPerSecond) {
  // 3 frames of 1x1 unit; 2 s per grid at 2 tokens/s -> temporal steps of 4.
  RopeIndexInputs in;
  in.video_grids = {{3, 2, 2}};
  in.seconds_per_video_grid = {2.0f};
  MropePositions p = rope_index({S, V, V, V, E}, in);
  EXPECT_EQ(row(p, 0), (std::vector<int64_t>{0, 1, 5, 9, 10}));
  EXPECT_EQ(row(p, 1), (std::vector<int64_t>{0, 1, 1, 1, 10}));
  EXPECT_EQ(p.rope_delta, 11 - 5);
  // Fractional intervals are scaled before truncation: 0.5 s · 2 = 1 per frame, not 0.
  in.seconds_per_video_grid = {0.5f};
  p = rope_index({S, V, V, V, E}, in);
  EXPECT_EQ(row(p, 0), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // 0.75 s · 2 = 1.5: frames at 0, 1 (1.5 truncated), 3.
  in.seconds_per_video_grid = {0.75f};
  p = rope_index({S, V, V, V, E}, in);
  EXPECT_EQ(row(p, 0), (std::vector<int64_t>{0, 1, 2, 4, 5}));
}

TEST(RopeIndex, ImageThenVideoAtTheSampledRate) {
  // An image of 1x1 unit, then a video of 3 temporal patches of 1x1 unit sampled at
  // 30 / 901 * 29.97 fps (30 frames of a 30 s clip): second_per_grid_ts = float32(2 / 0.99789...)
  // = 2.0042262, so t * 2.0042262 * 2 = 0, 4.008, 8.017 -> 0, 4, 8 (transformers 5.17 would
  // use int(2.0042262) = 2: 0, 4, 8 too; at 4 fps it would give 0, 0, 0 where we give 0, 1, 2).
  RopeIndexInputs in;
  in.image_grids = {{1, 2, 2}};
  in.video_grids = {{3, 2, 2}};
  in.seconds_per_video_grid = {float(2.0 / (30.0 / 901.0 * 29.97))};
  MropePositions p = rope_index({9, S, P, E, S, V, V, V, E, 9}, in);
  EXPECT_EQ(row(p, 0), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 9, 13, 14, 15}));
  EXPECT_EQ(row(p, 1), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 5, 5, 14, 15}));
  // A video before the image: the order of the blocks decides, not the kind.
  MropePositions q = rope_index({S, V, V, V, E, S, P, E}, in);
  EXPECT_EQ(row(q, 0), (std::vector<int64_t>{0, 1, 5, 9, 10, 11, 12, 13}));
}

TEST(RopeIndex, PadsAndGridsMustAgree) {
  RopeIndexInputs in;
  in.image_grids = {{1, 4, 4}};  // 4 pads expected
  EXPECT_THROW(rope_index({S, P, P, E}, in), Error);
  EXPECT_THROW(rope_index({S, E}, in), Error);
  EXPECT_THROW(rope_index({S, P, P, P, P, E, S, P, E}, in), Error);
}

}  // namespace
}  // namespace qwenvl
