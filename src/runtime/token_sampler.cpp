#include "runtime/token_sampler.h"

#include "core/error.h"
#include "runtime/sampling_limits.h"

namespace qwenvl {

TokenSampler::TokenSampler(const GenerationRequest& request, int64_t vocab, RepeatPenalty repeats)
    : sampling_(effective_sampling(request.sampling)),
      device_sampling_(sampling_),
      top_logprobs_(request.top_logprobs),
      rng_(request.seed) {
  const bool host = request.presence_penalty != 0.0f || request.frequency_penalty != 0.0f ||
                    request.top_logprobs >= 0;
  if (!host) {
    if (repeats == RepeatPenalty::kCallerRows && sampling_.repetition_penalty != 1.0f) {
      repeats_.emplace(vocab, request.prompt_ids, sampling_.repetition_penalty, 0.0f, 0.0f);
      device_sampling_.repetition_penalty = 1.0f;
    }
    return;
  }
  if (request.top_logprobs > kMaxTopLogprobs)
    fail("top_logprobs must be at most ", kMaxTopLogprobs, " (got ", request.top_logprobs, ")");
  penalties_.emplace(vocab, request.prompt_ids, sampling_.repetition_penalty,
                     request.presence_penalty, request.frequency_penalty);
  device_sampling_.repetition_penalty = 1.0f;
  logits_host_ = Tensor::empty({vocab}, DType::F32);
}

bool TokenSampler::greedy() const {
  return !host_logits() && sampling_.temperature == 0.0f && sampling_.repetition_penalty == 1.0f;
}

bool TokenSampler::greedy_after_caller_penalty() const {
  return !host_logits() && sampling_.temperature == 0.0f &&
         device_sampling_.repetition_penalty == 1.0f;
}

std::span<const int32_t> TokenSampler::repeated_ids() const {
  if (!repeats_) return {};
  return repeats_->seen_ids();
}

void TokenSampler::sample(Backend& backend, Tensor& logits, const Tensor& history, int64_t step,
                          Tensor& token) {
  if (penalties_) {
    backend.copy_to_host(logits, logits_host_);
    backend.synchronize();
    float* scores = logits_host_.data<float>();
    penalties_->apply(scores, logits_host_.numel());
    if (top_logprobs_ >= 0)
      logprobs_.compute(scores, logits_host_.numel(), sampling_.temperature, top_logprobs_);
    backend.copy_from_host(logits_host_, logits);
  }
  backend.sample(logits, history, device_sampling_, rng_.uniform(uint64_t(step)), token);
}

void TokenSampler::add_generated(int32_t id) {
  if (penalties_) penalties_->add_generated(id);
  if (repeats_) repeats_->add_generated(id);
}

}  // namespace qwenvl
