// get_window_index, rot_pos_emb's positions and the frame boundaries on grids small enough to
// work out by hand (14-px patches, 2x2 merge, 112-px windows = 4x4 merged units).
#include "model/window_index.h"

#include <gtest/gtest.h>

namespace qwenvl {
namespace {

const VisionGeometry kGeometry{14, 2, 112};

TEST(WindowIndex, SingleWindowKeepsOrder) {
  WindowIndex w = window_index({{1, 4, 4}}, kGeometry);  // 2x2 units, one window
  EXPECT_EQ(w.unit_order, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(w.cu_window_seqlens, (std::vector<int32_t>{0, 16}));
}

TEST(WindowIndex, TallImageSplitsIntoWindowRows) {
  // 10x2 units: windows of rows 0-3, 4-7, 8-9 (8, 8 and 4 units; 4 patches each).
  WindowIndex w = window_index({{1, 20, 4}}, kGeometry);
  std::vector<int32_t> identity(20);
  for (int i = 0; i < 20; ++i) identity[size_t(i)] = i;
  EXPECT_EQ(w.unit_order, identity);
  EXPECT_EQ(w.cu_window_seqlens, (std::vector<int32_t>{0, 32, 64, 80}));
}

TEST(WindowIndex, WideImageGathersColumnsOfWindows) {
  // 2x10 units (row-major, unit = row * 10 + column): windows of columns 0-3, 4-7, 8-9.
  WindowIndex w = window_index({{1, 4, 20}}, kGeometry);
  EXPECT_EQ(w.unit_order, (std::vector<int32_t>{0, 1, 2,  3,  10, 11, 12, 13, 4,  5,
                                                6, 7, 14, 15, 16, 17, 8,  9,  18, 19}));
  EXPECT_EQ(w.cu_window_seqlens, (std::vector<int32_t>{0, 32, 64, 80}));
}

TEST(WindowIndex, ExactMultipleAddsEmptyWindowsThatCollapse) {
  // 4x4 units: transformers pads a whole extra window row and column; they hold nothing and
  // unique_consecutive removes their repeated boundaries.
  WindowIndex w = window_index({{1, 8, 8}}, kGeometry);
  EXPECT_EQ(w.unit_order.size(), 16u);
  EXPECT_EQ(w.cu_window_seqlens, (std::vector<int32_t>{0, 64}));
}

TEST(WindowIndex, FramesAndImagesAreOffset) {
  // A 2-frame video of 2x2 units, then a 2x10-unit image starting at unit 8.
  WindowIndex w = window_index({{2, 4, 4}, {1, 4, 20}}, kGeometry);
  std::vector<int32_t> expected{0, 1, 2, 3, 4, 5, 6, 7};
  for (int32_t u : {0, 1, 2, 3, 10, 11, 12, 13, 4, 5, 6, 7, 14, 15, 16, 17, 8, 9, 18, 19})
    expected.push_back(u + 8);
  EXPECT_EQ(w.unit_order, expected);
  EXPECT_EQ(w.cu_window_seqlens, (std::vector<int32_t>{0, 16, 32, 64, 96, 112}));
}

TEST(WindowIndex, FrameBoundaries) {
  EXPECT_EQ(frame_cu_seqlens({{2, 4, 4}, {1, 4, 20}}), (std::vector<int32_t>{0, 16, 32, 112}));
}

TEST(VisionPositions, MergeBlockedRowsAndColumns) {
  // 4x4 patches: blocks (0,0), (0,1), (1,0), (1,1), each 2x2 patches in raster order.
  std::vector<int32_t> pos = vision_patch_positions({{1, 4, 4}}, 2);
  ASSERT_EQ(pos.size(), 32u);
  std::vector<int32_t> rows(pos.begin(), pos.begin() + 16), cols(pos.begin() + 16, pos.end());
  EXPECT_EQ(rows, (std::vector<int32_t>{0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3}));
  EXPECT_EQ(cols, (std::vector<int32_t>{0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3}));
}

TEST(VisionPositions, RepeatedPerFrame) {
  std::vector<int32_t> pos = vision_patch_positions({{2, 2, 2}}, 2);
  EXPECT_EQ(pos, (std::vector<int32_t>{0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1}));
}

TEST(Permutation, UnitsExpandToPatchRowsAndInvert) {
  EXPECT_EQ(units_to_patches({1, 0}, 2), (std::vector<int32_t>{4, 5, 6, 7, 0, 1, 2, 3}));
  EXPECT_EQ(inverse_permutation({2, 0, 3, 1}), (std::vector<int32_t>{1, 3, 0, 2}));
}

}  // namespace
}  // namespace qwenvl
