#pragma once
// OpenAI's logprobs of a generated token: its log-probability and the most likely alternatives
// at that step. The distribution is the one the token was drawn from before truncation: the
// logits after the penalties and the temperature, before top-k, top-p and min-p (vLLM's
// logprobs_mode "processed_logprobs", its V0 sampler's); at temperature 0 (greedy) the
// penalised logits themselves, log-softmaxed.
#include <cstdint>
#include <vector>

namespace qwenvl {

inline constexpr int kMaxTopLogprobs = 20;  // OpenAI's bound on top_logprobs

struct TopLogprob {
  int32_t id = 0;
  float logprob = 0;  // -inf for a token the logits rule out
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<TopLogprob> top;  // most likely first; equal ones by lower id
};

// One step's log-probabilities, kept until the step's token is known.
class StepLogprobs {
 public:
  // scores: the step's penalised logits [vocab]; top_n in [0, kMaxTopLogprobs].
  void compute(const float* scores, int64_t vocab, float temperature, int top_n);
  TokenLogprob of(int32_t id) const;

 private:
  std::vector<float> logprobs_;
  std::vector<int32_t> order_;  // scratch for the top-n selection
  std::vector<TopLogprob> top_;
};

}  // namespace qwenvl
