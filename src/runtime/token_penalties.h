#pragma once
// The penalties against repeats, applied on the host to one step's logits. The backends' samplers
// know only transformers' repetition penalty; OpenAI's presence and frequency penalties are
// applied here, and the repetition penalty with them so the order is vLLM's (apply_penalties):
//   1. repetition: for each distinct id of the prompt or the completion so far,
//      logit = logit > 0 ? logit / r : logit · r (transformers' and vLLM's rule);
//   2. logit -= frequency · count + presence · (count > 0), count = the id's occurrences in the
//      completion so far (the prompt does not count, as OpenAI defines them).
#include <cstdint>
#include <vector>

namespace qwenvl {

class TokenPenalties {
 public:
  TokenPenalties(int64_t vocab, const std::vector<int32_t>& prompt_ids, float repetition,
                 float presence, float frequency);

  void add_generated(int32_t id);
  void apply(float* logits, int64_t vocab) const;
  // The distinct ids of the prompt and the completion so far (those the repetition penalty
  // touches; empty when it is 1).
  const std::vector<int32_t>& seen_ids() const { return seen_ids_; }

 private:
  void check(int32_t id) const;

  float repetition_, presence_, frequency_;
  std::vector<uint8_t> seen_;   // [vocab]: in the prompt or the completion
  std::vector<int32_t> count_;  // [vocab]: occurrences in the completion
  std::vector<int32_t> seen_ids_;
  std::vector<int32_t> generated_ids_;  // distinct
};

}  // namespace qwenvl
