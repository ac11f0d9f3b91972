#include "runtime/token_penalties.h"

#include "core/error.h"

namespace qwenvl {

TokenPenalties::TokenPenalties(int64_t vocab, const std::vector<int32_t>& prompt_ids,
                               float repetition, float presence, float frequency)
    : repetition_(repetition),
      presence_(presence),
      frequency_(frequency),
      seen_(size_t(vocab), 0),
      count_(size_t(vocab), 0) {
  if (repetition_ == 1.0f) return;  // the prompt only matters to the repetition penalty
  for (int32_t id : prompt_ids) {
    check(id);
    if (!seen_[size_t(id)]) seen_ids_.push_back(id);
    seen_[size_t(id)] = 1;
  }
}

void TokenPenalties::check(int32_t id) const {
  if (id < 0 || size_t(id) >= seen_.size())
    fail_internal("token penalties: id ", id, " is outside the vocabulary of ", seen_.size());
}

void TokenPenalties::add_generated(int32_t id) {
  check(id);
  if (!seen_[size_t(id)]) seen_ids_.push_back(id);
  seen_[size_t(id)] = 1;
  if (count_[size_t(id)]++ == 0) generated_ids_.push_back(id);
}

void TokenPenalties::apply(float* logits, int64_t vocab) const {
  if (size_t(vocab) != seen_.size())
    fail_internal("token penalties: ", vocab, " logits for a vocabulary of ", seen_.size());
  if (repetition_ != 1.0f)
    for (int32_t id : seen_ids_) {
      float& s = logits[id];
      s = s > 0 ? s / repetition_ : s * repetition_;
    }
  if (presence_ == 0.0f && frequency_ == 0.0f) return;
  for (int32_t id : generated_ids_)
    logits[id] -= frequency_ * float(count_[size_t(id)]) + presence_;
}

}  // namespace qwenvl
