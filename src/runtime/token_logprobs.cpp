#include "runtime/token_logprobs.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace qwenvl {

void StepLogprobs::compute(const float* scores, int64_t vocab, float temperature, int top_n) {
  if (vocab < 1) fail_internal("logprobs: the logits are empty");
  if (top_n < 0 || top_n > kMaxTopLogprobs)
    fail_internal("logprobs: top_n ", top_n, " is outside [0, ", kMaxTopLogprobs, "]");
  const float t = temperature > 0 ? temperature : 1.0f;
  logprobs_.resize(size_t(vocab));
  float max = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) {
    logprobs_[size_t(i)] = scores[i] / t;
    max = std::max(max, logprobs_[size_t(i)]);
  }
  if (!(max > -INFINITY)) fail("logprobs: every logit is -inf or NaN");
  double sum = 0;
  for (float v : logprobs_) sum += std::exp(double(v) - double(max));
  const float log_total = float(double(max) + std::log(sum));
  for (float& v : logprobs_) v -= log_total;

  top_.clear();
  if (top_n == 0) return;
  order_.resize(size_t(vocab));
  std::iota(order_.begin(), order_.end(), 0);
  const auto first = [this](int32_t a, int32_t b) {
    const float x = logprobs_[size_t(a)], y = logprobs_[size_t(b)];
    return x > y || (x == y && a < b);
  };
  const size_t n = std::min(size_t(top_n), order_.size());
  std::partial_sort(order_.begin(), order_.begin() + ptrdiff_t(n), order_.end(), first);
  for (size_t i = 0; i < n; ++i) top_.push_back({order_[i], logprobs_[size_t(order_[i])]});
}

TokenLogprob StepLogprobs::of(int32_t id) const {
  if (id < 0 || size_t(id) >= logprobs_.size())
    fail_internal("logprobs: id ", id, " is outside the vocabulary of ", logprobs_.size());
  return {id, logprobs_[size_t(id)], top_};
}

}  // namespace qwenvl
