// sample: greedy ties, the repetition penalty's two signs, top-k, top-p, min-p, and the uniform
// draw's walk, checked against a plain double-precision statement of the same rules.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu_test_support.h"

namespace qwenvl::test {
namespace {

// The documented rules, written independently of cpu_sample.cpp.
int32_t reference_sample(std::vector<float> s, const std::vector<int32_t>& history,
                         const SamplingParams& p, float u) {
  const int n = int(s.size());
  std::vector<bool> seen(n, false);
  for (int32_t id : history)
    if (!seen[id]) {
      seen[id] = true;
      s[id] = s[id] < 0 ? s[id] * p.repetition_penalty : s[id] / p.repetition_penalty;
    }
  if (p.temperature == 0) return int32_t(std::max_element(s.begin(), s.end()) - s.begin());
  std::vector<bool> keep(n, true);
  for (float& x : s) x = x / p.temperature;
  auto probs = [&](std::vector<double>& pr) {
    double mx = -INFINITY, total = 0;
    for (int i = 0; i < n; ++i)
      if (keep[i]) mx = std::max(mx, double(s[i]));
    pr.assign(n, 0);
    for (int i = 0; i < n; ++i)
      if (keep[i]) total += pr[i] = std::exp(double(s[i]) - mx);
    for (double& x : pr) x /= total;
  };
  if (p.top_k > 0) {
    std::vector<float> sorted = s;
    std::sort(sorted.rbegin(), sorted.rend());
    const float kth = sorted[std::min(p.top_k, n) - 1];
    for (int i = 0; i < n; ++i) keep[i] = keep[i] && s[i] >= kth;
  }
  std::vector<int> order(n);
  std::vector<double> pr;
  if (p.top_p < 1) {
    probs(pr);
    for (int i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] < s[b]; });
    double cum = 0;
    for (int r = 0; r + 1 < n; ++r) {
      cum += pr[order[r]];
      if (cum <= 1 - double(p.top_p)) keep[order[r]] = false;
    }
  }
  if (p.min_p > 0) {
    probs(pr);
    const double top = *std::max_element(pr.begin(), pr.end());
    for (int i = 0; i < n; ++i)
      if (pr[i] < p.min_p * top && pr[i] < top) keep[i] = false;
  }
  probs(pr);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return pr[a] > pr[b]; });
  double cum = 0;
  int32_t last = -1;
  for (int id : order) {
    if (!keep[id]) continue;
    last = id;
    cum += pr[id];
    if (cum > u) return id;
  }
  return last;
}

class CpuSampleTest : public CpuTest {
 protected:
  int32_t run(const std::vector<float>& logits, const std::vector<int32_t>& history,
              const SamplingParams& p, float u) {
    Tensor l = Tensor::empty({int64_t(logits.size())}, DType::F32);
    std::copy(logits.begin(), logits.end(), l.data<float>());
    Tensor h = Tensor::empty({int64_t(history.size())}, DType::I32);
    std::copy(history.begin(), history.end(), h.data<int32_t>());
    Tensor next = Tensor::empty({1}, DType::I32);
    backend_.sample(l, h, p, u, next);
    return next.data<int32_t>()[0];
  }
  std::vector<float> random_logits(int n, double spread) {
    std::vector<float> v(n);
    for (float& x : v) x = float(uniform(-spread, spread));
    return v;
  }
};

TEST_F(CpuSampleTest, GreedyTakesTheLowestIdAmongEqualMaxima) {
  std::vector<float> l = random_logits(100, 3);
  l[41] = l[17] = 5.0f;
  SamplingParams greedy;
  greedy.temperature = 0;
  EXPECT_EQ(run(l, {}, greedy, 0.7f), 17);
}

TEST_F(CpuSampleTest, RepetitionPenaltyDividesPositiveAndMultipliesNegativeScoresOnce) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 1.5f;
  // id 0: 2.0 -> 1.333 (once, though repeated); id 2: -0.5 -> -0.75.
  EXPECT_EQ(run({2.0f, 1.9f, -0.5f, -0.6f}, {0, 0, 2}, p, 0), 1);
  EXPECT_EQ(run({-0.5f, -0.7f}, {0}, p, 0), 1) << "-0.5 * 1.5 = -0.75 < -0.7";
  EXPECT_EQ(run({1.6f, 1.0f}, {0, 0, 0}, p, 0), 0) << "1.6 / 1.5 = 1.067 once, not thrice";
  Tensor l = Tensor::empty({4}, DType::F32), h = Tensor::empty({1}, DType::I32);
  Tensor next = Tensor::empty({1}, DType::I32);
  h.data<int32_t>()[0] = 4;
  EXPECT_THROW(backend_.sample(l, h, p, 0, next), Error) << "history id outside the vocabulary";
}

TEST_F(CpuSampleTest, TopKOneAndTinyTopPAreGreedy) {
  std::vector<float> l = random_logits(1000, 4);
  const int32_t best = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
  for (float u : {0.0f, 0.5f, 0.999f}) {
    SamplingParams k1;
    k1.top_k = 1;
    EXPECT_EQ(run(l, {}, k1, u), best);
    SamplingParams tiny_p;
    tiny_p.top_p = 0.001f;
    EXPECT_EQ(run(l, {}, tiny_p, u), best);
  }
}

TEST_F(CpuSampleTest, MinPKeepsOnlyTokensNearTheTop) {
  std::vector<float> l = random_logits(500, 1);
  l[7] = 4.0f;
  l[300] = 3.9f;  // exp(-0.1) = 0.905 of the top
  SamplingParams p;
  p.min_p = 0.8f;
  for (float u = 0; u < 1; u += 0.05f) {
    const int32_t t = run(l, {}, p, u);
    EXPECT_TRUE(t == 7 || t == 300) << "u=" << u << " picked " << t;
  }
  EXPECT_EQ(run(l, {}, p, 0.0f), 7);
  EXPECT_EQ(run(l, {}, p, 0.99f), 300);
}

TEST_F(CpuSampleTest, MatchesTheReferenceRulesOnRandomSettings) {
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<float> l = random_logits(uniform_int(1, 400), uniform(0.1, 8));
    if (uniform_int(0, 3) == 0) l[uniform_int(0, int(l.size()) - 1)] = l[0];  // a tie
    std::vector<int32_t> history(uniform_int(0, 20));
    for (int32_t& id : history) id = uniform_int(0, int(l.size()) - 1);
    SamplingParams p;
    p.temperature = uniform_int(0, 5) == 0 ? 0.0f : float(uniform(0.2, 2));
    p.top_k = uniform_int(0, 1) ? uniform_int(1, 50) : 0;
    p.top_p = uniform_int(0, 1) ? float(uniform(0.05, 1)) : 1.0f;
    p.min_p = uniform_int(0, 1) ? float(uniform(0, 0.5)) : 0.0f;
    p.repetition_penalty = uniform_int(0, 1) ? float(uniform(1, 2)) : 1.0f;
    const float u = float(uniform(0, 1));
    SCOPED_TRACE(cat("trial ", trial, " vocab=", l.size(), " T=", p.temperature, " k=", p.top_k,
                     " p=", p.top_p, " min_p=", p.min_p, " rep=", p.repetition_penalty, " u=", u));
    const int32_t got = run(l, history, p, u);
    EXPECT_EQ(got, reference_sample(l, history, p, u));
    EXPECT_EQ(got, run(l, history, p, u)) << "the same draw picks the same token";
  }
}

TEST_F(CpuSampleTest, RowsPickWhatGreedySamplePicksWithTheirPenalties) {
  // Row r: its own repeated ids (distinct) and penalty, then the greedy pick of each row, as
  // sample() picks from that row alone with the ids as its history.
  const int rows = 4, vocab = 300;
  const std::vector<std::vector<int32_t>> repeats = {{}, {5, 17, 299}, {0}, {8, 9, 10, 11}};
  const std::vector<float> penalties = {1.0f, 1.5f, 1.2f, 0.8f};
  Tensor logits = Tensor::empty({rows, vocab}, DType::F32);
  for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = float(uniform(-3, 3));
  logits.data<float>()[1 * vocab + 17] = 9.0f;  // the penalty decides row 1
  logits.data<float>()[1 * vocab + 18] = 8.0f;
  Tensor want = Tensor::empty({rows}, DType::I32);
  std::vector<int32_t> all, offsets = {0};
  for (int r = 0; r < rows; ++r) {
    all.insert(all.end(), repeats[size_t(r)].begin(), repeats[size_t(r)].end());
    offsets.push_back(int32_t(all.size()));
    std::vector<float> row(logits.data<float>() + r * vocab,
                           logits.data<float>() + (r + 1) * vocab);
    SamplingParams p;
    p.temperature = 0;
    p.repetition_penalty = penalties[size_t(r)];
    want.data<int32_t>()[r] = run(row, repeats[size_t(r)], p, 0.5f);
  }
  EXPECT_EQ(want.data<int32_t>()[1], 18);
  auto tensor = [](const auto& values, DType dtype) {
    Tensor t = Tensor::empty({int64_t(values.size())}, dtype);
    std::memcpy(t.data(), values.data(), values.size() * 4);
    return t;
  };
  backend_.penalize_repeats(logits, tensor(all, DType::I32), tensor(offsets, DType::I32),
                            tensor(penalties, DType::F32));
  Tensor got = Tensor::empty({rows}, DType::I32);
  backend_.argmax_rows(logits, got);
  for (int r = 0; r < rows; ++r) EXPECT_EQ(got.data<int32_t>()[r], want.data<int32_t>()[r]) << r;
}

TEST_F(CpuSampleTest, RejectsInvalidParameters) {
  SamplingParams p;
  p.top_p = 1.5f;
  EXPECT_THROW(run({1, 2}, {}, p, 0), Error);
  p = {};
  p.temperature = -1;
  EXPECT_THROW(run({1, 2}, {}, p, 0), Error);
  p = {};
  EXPECT_THROW(run({-INFINITY, -INFINITY}, {}, p, 0), Error);
}

}  // namespace
}  // namespace qwenvl::test
