#include "runtime/token_logprobs.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"

namespace qwenvl {
namespace {

// log_softmax(scores / t) in double, the reference.
std::vector<double> reference(const std::vector<float>& scores, double t) {
  double max = -INFINITY;
  for (float s : scores) max = std::max(max, s / t);
  double sum = 0;
  for (float s : scores) sum += std::exp(s / t - max);
  std::vector<double> out;
  for (float s : scores) out.push_back(s / t - max - std::log(sum));
  return out;
}

TEST(StepLogprobs, AreTheLogSoftmaxAtTheTemperature) {
  std::mt19937 rng(std::random_device{}());
  std::normal_distribution<float> normal(0.0f, 4.0f);
  std::vector<float> scores(1000);
  for (float& s : scores) s = normal(rng);
  for (float temperature : {0.0f, 0.5f, 1.0f, 1.7f}) {
    StepLogprobs step;
    step.compute(scores.data(), int64_t(scores.size()), temperature, 20);
    const std::vector<double> want = reference(scores, temperature > 0 ? temperature : 1.0);
    for (int32_t id : {0, 17, 999}) EXPECT_NEAR(step.of(id).logprob, want[size_t(id)], 1e-4);
    const TokenLogprob entry = step.of(5);
    ASSERT_EQ(entry.top.size(), 20u);
    // The 20 largest, in order: every other token is at most the last of them.
    for (size_t i = 1; i < entry.top.size(); ++i)
      EXPECT_GE(entry.top[i - 1].logprob, entry.top[i].logprob);
    std::vector<bool> in_top(scores.size());
    for (const TopLogprob& t : entry.top) {
      in_top[size_t(t.id)] = true;
      EXPECT_NEAR(t.logprob, want[size_t(t.id)], 1e-4);
    }
    for (size_t i = 0; i < scores.size(); ++i) {
      if (!in_top[i]) {
        EXPECT_LE(want[i], entry.top.back().logprob + 1e-6);
      }
    }
  }
}

TEST(StepLogprobs, TiesGoToTheLowerIdAndRuledOutTokensAreMinusInfinity) {
  const std::vector<float> scores = {1.0f, 3.0f, -INFINITY, 3.0f, 2.0f};
  StepLogprobs step;
  step.compute(scores.data(), 5, 1.0f, 3);
  const TokenLogprob entry = step.of(2);
  EXPECT_EQ(entry.logprob, -INFINITY);
  ASSERT_EQ(entry.top.size(), 3u);
  EXPECT_EQ(entry.top[0].id, 1);
  EXPECT_EQ(entry.top[1].id, 3);
  EXPECT_EQ(entry.top[2].id, 4);
  step.compute(scores.data(), 5, 1.0f, 0);
  EXPECT_TRUE(step.of(1).top.empty());
}

TEST(StepLogprobs, RefusesWhatNoRequestCanAskFor) {
  const std::vector<float> scores = {-INFINITY, -INFINITY};
  StepLogprobs step;
  EXPECT_THROW(step.compute(scores.data(), 2, 1.0f, 0), Error);
  const std::vector<float> fine = {0.0f, 1.0f};
  EXPECT_THROW(step.compute(fine.data(), 2, 1.0f, kMaxTopLogprobs + 1), Error);
  step.compute(fine.data(), 2, 1.0f, 5);
  EXPECT_EQ(step.of(0).top.size(), 2u);
  EXPECT_THROW(step.of(2), Error);
}

}  // namespace
}  // namespace qwenvl
