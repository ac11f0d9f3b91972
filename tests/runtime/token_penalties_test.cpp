#include "runtime/token_penalties.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace qwenvl {
namespace {

TEST(TokenPenalties, SubtractPresenceAndFrequencyOverTheCompletionOnly) {
  // id 1 is in the prompt only: OpenAI's penalties ignore it.
  TokenPenalties p(5, {1, 1}, 1.0f, 0.5f, 0.25f);
  p.add_generated(2);
  p.add_generated(3);
  p.add_generated(2);
  float logits[5] = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f};
  p.apply(logits, 5);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);
  EXPECT_FLOAT_EQ(logits[1], 2.0f);
  EXPECT_FLOAT_EQ(logits[2], 3.0f - (0.5f + 2 * 0.25f));
  EXPECT_FLOAT_EQ(logits[3], -1.0f - (0.5f + 0.25f));
  EXPECT_FLOAT_EQ(logits[4], 0.5f);
}

TEST(TokenPenalties, NegativePenaltiesEncourageRepeats) {
  TokenPenalties p(3, {}, 1.0f, -1.0f, -2.0f);
  p.add_generated(0);
  float logits[3] = {0.0f, 0.0f, 0.0f};
  p.apply(logits, 3);
  EXPECT_FLOAT_EQ(logits[0], 3.0f);
  EXPECT_FLOAT_EQ(logits[1], 0.0f);
}

TEST(TokenPenalties, RepetitionPenaltyCoversPromptAndCompletionOnceEach) {
  // transformers' rule on each distinct id, then the additive penalties (vLLM's order).
  TokenPenalties p(4, {0, 0, 1}, 2.0f, 1.0f, 0.0f);
  p.add_generated(1);
  p.add_generated(2);
  p.add_generated(2);
  float logits[4] = {4.0f, -4.0f, 6.0f, 8.0f};
  p.apply(logits, 4);
  EXPECT_FLOAT_EQ(logits[0], 2.0f);          // prompt: / 2 once, no presence penalty
  EXPECT_FLOAT_EQ(logits[1], -8.0f - 1.0f);  // negative: · 2, then presence
  EXPECT_FLOAT_EQ(logits[2], 3.0f - 1.0f);
  EXPECT_FLOAT_EQ(logits[3], 8.0f);
}

TEST(TokenPenalties, RefusesIdsOutsideTheVocabulary) {
  EXPECT_THROW(TokenPenalties(3, {3}, 1.5f, 0.0f, 0.0f), Error);
  TokenPenalties p(3, {}, 1.0f, 1.0f, 0.0f);
  EXPECT_THROW(p.add_generated(-1), Error);
  float logits[4] = {};
  EXPECT_THROW(p.apply(logits, 4), Error);
}

}  // namespace
}  // namespace qwenvl
