#include "runtime/sequence_output.h"

#include <algorithm>

namespace qwenvl {

SequenceOutput::SequenceOutput(const GenerationRequest& request, const Tokenizer& tokenizer,
                               std::function<void(const std::string&)> on_text,
                               GenerationResult& result)
    : request_(request),
      tokenizer_(tokenizer),
      on_text_(std::move(on_text)),
      result_(result),
      detokenizer_(tokenizer),
      stops_(request.stop) {
  result_.finish_reason = "length";
}

void SequenceOutput::emit(const std::string& piece) {
  if (piece.empty()) return;
  result_.text += piece;
  if (on_text_) on_text_(piece);
}

bool SequenceOutput::accept(int32_t id, const TokenSampler& sampler) {
  result_.tokens.push_back(id);
  if (request_.on_token && !request_.on_token(id)) {
    result_.finish_reason = "cancelled";
    return false;
  }
  const bool eos = std::find(request_.eos_token_ids.begin(), request_.eos_token_ids.end(), id) !=
                   request_.eos_token_ids.end();
  if (eos && !request_.ignore_eos && int64_t(result_.tokens.size()) > request_.min_tokens) {
    result_.finish_reason = "stop";
    return false;
  }
  if (request_.top_logprobs >= 0) {
    result_.logprobs.push_back(sampler.logprob_of(id));
    if (request_.on_logprob) request_.on_logprob(result_.logprobs.back());
  }
  if (!tokenizer_.is_special(id)) emit(stops_.push(detokenizer_.push(id)));
  if (stops_.stopped()) {
    result_.finish_reason = "stop";
    return false;
  }
  return int64_t(result_.tokens.size()) < request_.max_new_tokens;
}

void SequenceOutput::finish() {
  if (!stops_.stopped()) emit(stops_.push(detokenizer_.finish()));
  emit(stops_.finish());
}

}  // namespace qwenvl
