#include "runtime/sampler_rng.h"

#include <gtest/gtest.h>

#include <set>

namespace qwenvl {
namespace {

TEST(SamplerRng, SameSeedAndStepSameDraw) {
  SamplerRng a(42), b(42);
  for (uint64_t step : {0ull, 1ull, 7ull, 1000ull}) EXPECT_EQ(a.uniform(step), b.uniform(step));
  // Order of calls does not matter: the draw is a function of (seed, step).
  float late = a.uniform(5);
  a.uniform(0);
  EXPECT_EQ(a.uniform(5), late);
}

TEST(SamplerRng, SeedsAndStepsDiffer) {
  SamplerRng a(1), b(2);
  EXPECT_NE(a.uniform(0), b.uniform(0));
  std::set<float> draws;
  for (uint64_t s = 0; s < 1000; ++s) draws.insert(a.uniform(s));
  EXPECT_GT(draws.size(), 990u);
}

TEST(SamplerRng, UniformInUnitIntervalWithSaneMean) {
  SamplerRng rng(123);
  double sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    float u = rng.uniform(uint64_t(i));
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.01);
}

}  // namespace
}  // namespace qwenvl
