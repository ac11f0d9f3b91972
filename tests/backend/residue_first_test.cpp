// ResidueFirst: where each of a width's columns is stored.
#include "backend/residue_first.h"

#include <gtest/gtest.h>

namespace qwenvl {
namespace {

TEST(ResidueFirst, StoresTheResidueThenAGapThenTheRest) {
  const ResidueFirst layout{3420};  // Qwen2.5-VL's vision MLP: 53 tiles of 64 and 28 columns
  EXPECT_EQ(layout.residue(), 28);
  EXPECT_EQ(layout.width(), 3456);
  EXPECT_EQ(layout.position(0), 0);
  EXPECT_EQ(layout.position(27), 27);
  EXPECT_EQ(layout.position(28), 64);  // 36 zero columns in between
  EXPECT_EQ(layout.position(3419), 3455);
}

TEST(ResidueFirst, LeavesMultiplesOfEightAsTheyAre) {
  for (int64_t count : {8, 64, 1280, 3424}) {
    const ResidueFirst layout{count};
    EXPECT_EQ(layout.residue(), 0);
    EXPECT_EQ(layout.width(), count);
    EXPECT_EQ(layout.position(count - 1), count - 1);
  }
}

TEST(ResidueFirst, ShortWidthsAreOnePaddedTile) {
  const ResidueFirst layout{100};
  EXPECT_EQ(layout.width(), 128);
  EXPECT_EQ(layout.position(35), 35);
  EXPECT_EQ(layout.position(36), 64);
  EXPECT_EQ(ResidueFirst{5}.width(), 64);
  EXPECT_EQ(ResidueFirst{5}.position(4), 4);
}

}  // namespace
}  // namespace qwenvl
