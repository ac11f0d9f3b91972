#pragma once
// The bodies /v1/chat/completions answers with, in OpenAI's shapes: a whole completion, the
// server-sent events of a streamed one (chat.completion.chunk objects, then "data: [DONE]"), and
// the error object every failing request gets.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qwenvl {

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t image_tokens = 0;  // of prompt_tokens, the images' (usage.prompt_tokens_details)
};

// One generated token's entry in choices[].logprobs.content: the token's raw bytes (a byte-level
// token may be part of a UTF-8 character; "token" shows it with U+FFFD, "bytes" exactly) and its
// log-probability, with the most likely alternatives.
struct TokenChoice {
  std::string bytes;
  float logprob = 0;
};
struct LogprobEntry {
  TokenChoice token;
  std::vector<TokenChoice> top;
};

// What every chunk and the completion of one request share.
struct CompletionIdentity {
  std::string id;  // "chatcmpl-..."
  std::string model;
  int64_t created = 0;  // Unix seconds
};

// finish_reason as OpenAI spells it: "stop", "length"; a cancelled request ends as "abort"
// (vLLM's word), though its client, gone, rarely reads it. logprobs: null when not asked for.
std::string completion_json(const CompletionIdentity& identity, const std::string& text,
                            const std::string& finish_reason, const Usage& usage,
                            const std::vector<LogprobEntry>* logprobs = nullptr);

// One SSE event: "data: {chunk}\n\n". The first chunk carries the role, the last the
// finish_reason with an empty delta; a usage chunk has no choices.
std::string sse_role_chunk(const CompletionIdentity& identity);
std::string sse_text_chunk(const CompletionIdentity& identity, const std::string& text,
                           const std::vector<LogprobEntry>* logprobs = nullptr);
std::string sse_finish_chunk(const CompletionIdentity& identity, const std::string& finish_reason);
std::string sse_usage_chunk(const CompletionIdentity& identity, const Usage& usage);
std::string sse_error(const std::string& message, const std::string& type);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// {"error": {"message", "type", "param", "code"}}; param null when empty.
std::string error_json(const std::string& message, const std::string& type,
                       const std::string& param, int code);

}  // namespace qwenvl
