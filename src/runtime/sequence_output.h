#pragma once
// What a sequence does with each token it generates, wherever the token came from (one request
// alone, or a batch): collects it, ends generation at an end-of-sequence id (after min_tokens), a
// stop string or a client gone away, records its logprobs, and streams the text that is final.
#include <cstdint>
#include <functional>
#include <string>

#include "runtime/generator.h"
#include "runtime/stop_strings.h"
#include "runtime/token_sampler.h"
#include "text/tokenizer.h"

namespace qwenvl {

class SequenceOutput {
 public:
  // Writes into `result` (tokens, logprobs, text, finish_reason "length" until another ends it);
  // on_text receives each text piece as it becomes final (may be empty).
  SequenceOutput(const GenerationRequest& request, const Tokenizer& tokenizer,
                 std::function<void(const std::string&)> on_text, GenerationResult& result);

  // Takes the next generated id, its logprobs from `sampler`'s last step. Returns false when
  // generation ends with it.
  bool accept(int32_t id, const TokenSampler& sampler);
  // After the last token: the text still held back (an unfinished character, a possible stop).
  void finish();

 private:
  void emit(const std::string& piece);

  const GenerationRequest& request_;
  const Tokenizer& tokenizer_;
  std::function<void(const std::string&)> on_text_;
  GenerationResult& result_;
  StreamingDecoder detokenizer_;
  StopStringFilter stops_;
};

}  // namespace qwenvl
