#pragma once
// How a sequence picks each token from its logits on the device: the backend's sampler alone
// (temperature, top-k/p, min-p, transformers' repetition penalty over a device history), or, for
// what the backends lack (OpenAI's presence and frequency penalties, logprobs), the host first
// applying the penalties to a copy of the logits and computing the logprobs, then the backend
// sampling from them.
#include <cstdint>
#include <optional>

#include "backend/backend.h"
#include "runtime/generator.h"
#include "runtime/sampler_rng.h"
#include "runtime/token_logprobs.h"
#include "runtime/token_penalties.h"

namespace qwenvl {

class TokenSampler {
 public:
  // device_history: the caller keeps the sequence's ids on the device for the backend's
  // repetition penalty; without it that penalty is applied on the host too.
  TokenSampler(const GenerationRequest& request, int64_t vocab, bool device_history);

  // Whether each step's logits visit the host (so its token must be known before the next step).
  bool host_logits() const { return penalties_.has_value(); }
  // Whether the pick is the argmax alone (a rule a captured decode step can apply itself).
  bool greedy() const;

  // Picks step `step`'s token from `logits` (f32 [vocab], modified) into `token` (I32 [1]), both
  // on `backend`; history: the sequence's ids so far on the device (device_history), else empty.
  void sample(Backend& backend, Tensor& logits, const Tensor& history, int64_t step, Tensor& token);
  // The token the last sample picked, once it is read: it joins the penalties' counts.
  void add_generated(int32_t id);
  // The log-probabilities of the last step sampled (requests with top_logprobs >= 0).
  TokenLogprob logprob_of(int32_t id) const { return logprobs_.of(id); }

 private:
  SamplingParams sampling_, device_sampling_;
  int top_logprobs_;
  SamplerRng rng_;
  std::optional<TokenPenalties> penalties_;
  StepLogprobs logprobs_;
  Tensor logits_host_;
};

}  // namespace qwenvl
