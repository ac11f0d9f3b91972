#pragma once
// How a sequence picks each token from its logits on the device: the backend's sampler alone
// (temperature, top-k/p, min-p, transformers' repetition penalty over a device history), or, for
// what the backends lack (OpenAI's presence and frequency penalties, logprobs), the host first
// applying the penalties to a copy of the logits and computing the logprobs, then the backend
// sampling from them. In a batched pass the repetition penalty of many sequences is one op
// (Backend::penalize_repeats) over the distinct ids each sampler keeps.
#include <cstdint>
#include <optional>
#include <span>

#include "backend/backend.h"
#include "runtime/generator.h"
#include "runtime/sampler_rng.h"
#include "runtime/token_logprobs.h"
#include "runtime/token_penalties.h"

namespace qwenvl {

// Where the repetition penalty of a sequence without host penalties is applied.
enum class RepeatPenalty {
  kDeviceHistory,  // by the backend's sampler, over the caller's device history of the ids
  kCallerRows,     // by the caller, over repeated_ids() (a batched pass), before sample()
};

class TokenSampler {
 public:
  TokenSampler(const GenerationRequest& request, int64_t vocab, RepeatPenalty repeats);

  // Whether each step's logits visit the host (so its token must be known before the next step).
  bool host_logits() const { return penalties_.has_value(); }
  // Whether the pick is the argmax alone (a rule a captured decode step can apply itself).
  bool greedy() const;
  // Whether the pick is the argmax once the caller has applied caller_penalty() (kCallerRows).
  bool greedy_after_caller_penalty() const;
  // kCallerRows: the repetition penalty the caller applies (1: none) and the distinct ids it
  // applies to (the prompt's and the completion's so far).
  float caller_penalty() const { return repeats_ ? sampling_.repetition_penalty : 1.0f; }
  std::span<const int32_t> repeated_ids() const;

  // Picks step `step`'s token from `logits` (f32 [vocab], modified) into `token` (I32 [1]), both
  // on `backend`; history: the sequence's ids so far on the device (kDeviceHistory), else empty.
  void sample(Backend& backend, Tensor& logits, const Tensor& history, int64_t step, Tensor& token);
  // The token the last sample picked, once it is read: it joins the penalties' counts.
  void add_generated(int32_t id);
  // The log-probabilities of the last step sampled (requests with top_logprobs >= 0).
  TokenLogprob logprob_of(int32_t id) const { return logprobs_.of(id); }

 private:
  SamplingParams sampling_, device_sampling_;
  int top_logprobs_;
  SamplerRng rng_;
  std::optional<TokenPenalties> penalties_;  // all penalties, on the host
  std::optional<TokenPenalties> repeats_;    // kCallerRows: the repeated ids alone
  StepLogprobs logprobs_;
  Tensor logits_host_;
};

}  // namespace qwenvl
