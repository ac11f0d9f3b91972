// RopeSpecs of the vision and text rotary embeddings.
#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace qwenvl {
namespace {

TEST(Rope, InverseFrequencies) {
  std::vector<float> inv = rope_inv_freq(4, 10000.0f);
  ASSERT_EQ(inv.size(), 2u);
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  EXPECT_FLOAT_EQ(inv[1], 0.01f);
  // Qwen2.5-VL text heads: 64 frequencies, the last 1e6^(-126/128).
  std::vector<float> text = rope_inv_freq(128, 1e6f);
  ASSERT_EQ(text.size(), 64u);
  EXPECT_NEAR(text[63], std::pow(1e6, -126.0 / 128.0), 1e-12);
}

TEST(Rope, VisionSpecSplitsRowsAndColumns) {
  RopeSpec s = vision_rope_spec(8);  // VisionRotaryEmbedding(4): inv_freq [1, 0.01]
  EXPECT_EQ(s.head_dim, 8);
  EXPECT_EQ(s.pos_row, (std::vector<int32_t>{0, 0, 1, 1}));
  ASSERT_EQ(s.inv_freq.size(), 4u);
  EXPECT_FLOAT_EQ(s.inv_freq[0], 1.0f);
  EXPECT_FLOAT_EQ(s.inv_freq[1], 0.01f);
  EXPECT_FLOAT_EQ(s.inv_freq[2], 1.0f);
  EXPECT_FLOAT_EQ(s.inv_freq[3], 0.01f);
  EXPECT_FALSE(s.round_in_activation_dtype);  // apply_rotary_pos_emb_vision rotates in fp32
}

TEST(Rope, MropeSectionsPickRows) {
  RopeSpec s = mrope_spec(8, 10000.0f, {1, 1, 2});
  EXPECT_EQ(s.pos_row, (std::vector<int32_t>{0, 1, 2, 2}));
  EXPECT_EQ(s.inv_freq, rope_inv_freq(8, 10000.0f));
  EXPECT_TRUE(s.round_in_activation_dtype);  // cos/sin handed over in the activation dtype
  RopeSpec real = mrope_spec(128, 1e6f, {16, 24, 24});
  EXPECT_EQ(real.pos_row[15], 0);
  EXPECT_EQ(real.pos_row[16], 1);
  EXPECT_EQ(real.pos_row[39], 1);
  EXPECT_EQ(real.pos_row[40], 2);
  EXPECT_EQ(real.pos_row[63], 2);
}

TEST(Rope, BadSectionsAreAnError) {
  EXPECT_THROW(mrope_spec(8, 10000.0f, {1, 1, 1}), Error);
  EXPECT_THROW(mrope_spec(8, 10000.0f, {2, 2}), Error);
}

}  // namespace
}  // namespace qwenvl
