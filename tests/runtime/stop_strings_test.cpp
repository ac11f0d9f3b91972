#include "runtime/stop_strings.h"

#include <gtest/gtest.h>

namespace qwenvl {
namespace {

TEST(StopStrings, PassesTextThroughWithoutStops) {
  StopStringFilter f({});
  EXPECT_EQ(f.push("hello "), "hello ");
  EXPECT_EQ(f.push("world"), "world");
  EXPECT_EQ(f.finish(), "");
  EXPECT_FALSE(f.stopped());
}

TEST(StopStrings, CutsAtStopSpanningPieces) {
  StopStringFilter f({"END"});
  EXPECT_EQ(f.push("abc E"), "abc ");  // "E" might start "END": held back
  EXPECT_EQ(f.push("N"), "");
  EXPECT_EQ(f.push("Dxyz"), "");
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.finish(), "");
}

TEST(StopStrings, ReleasesHeldTextWhenItDiverges) {
  StopStringFilter f({"END"});
  EXPECT_EQ(f.push("E"), "");
  EXPECT_EQ(f.push("Nx"), "ENx");
  EXPECT_EQ(f.push("E"), "");
  EXPECT_EQ(f.finish(), "E");
  EXPECT_FALSE(f.stopped());
}

TEST(StopStrings, EarliestOfSeveralWins) {
  StopStringFilter f({"world", "lo w"});
  EXPECT_EQ(f.push("hello world"), "hel");
  EXPECT_TRUE(f.stopped());
}

}  // namespace
}  // namespace qwenvl
