#pragma once
// POST /v1/chat/completions' body (OpenAI's schema, with vLLM's and Qwen's extensions that
// benchmarks and Qwen's own clients send) turned into a ChatRequest and generation settings.
// Everything is checked here, on the HTTP thread, before the request waits for the model; unknown
// fields are ignored as OpenAI's server does, known ones with a bad value are a ParamError.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/chat_request.h"
#include "runtime/generation_config.h"
#include "runtime/generator.h"
#include "server/media.h"
#include "vision/preprocess.h"

namespace qwenvl {

// A bad input naming the request field it is about (OpenAI's error "param").
class ParamError : public Error {
 public:
  ParamError(const std::string& param, const std::string& message)
      : Error(message, ErrorKind::BadInput), param_(param) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

// What a request falls back on, and the bounds the loaded model sets.
struct RequestDefaults {
  GenerationConfig generation;   // sampling defaults and eos ids
  std::vector<int32_t> eos_ids;  // generation_config's, or <|im_end|>
  PreprocessConfig preprocess;   // min/max pixels unless the request says
  int64_t max_context = 32768;   // the model's context (prompt + completion)
  int64_t max_image_pixels = 0;  // the largest image the model was sized for (max_pixels cap)
  int64_t max_image_tokens = 0;  // merged tokens of a request's images together
  int64_t default_max_tokens = 256;
  MediaPolicy media;
};

struct CompletionRequest {
  ChatRequest chat;              // messages and images; prompt ids come later, in the worker
  GenerationRequest generation;  // settings only: prompt ids and images are filled in later
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // answer with choices[].logprobs (generation.top_logprobs >= 0)
};

// Error (ParamError, or Error for a body that is not JSON) for anything that cannot be served.
CompletionRequest parse_completion_request(const std::string& body,
                                           const RequestDefaults& defaults);

}  // namespace qwenvl
