#include "server/openai_response.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace qwenvl {

namespace {

using nlohmann::json;

// Generated text may hold invalid UTF-8 only if the tokenizer produced it; replace, never throw.
std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string finish_name(const std::string& reason) {
  return reason == "cancelled" ? "abort" : reason;
}

json usage_json(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
          {"prompt_tokens_details", {{"image_tokens", usage.image_tokens}}}};
}

// A token a logit rules out has logprob -inf, which JSON cannot carry; vLLM writes -9999.0.
json logprob_value(float logprob) { return std::isfinite(logprob) ? logprob : -9999.0f; }

json token_json(const TokenChoice& choice) {
  json bytes = json::array();
  for (char c : choice.bytes) bytes.push_back(int(uint8_t(c)));
  return {{"token", choice.bytes}, {"logprob", logprob_value(choice.logprob)}, {"bytes", bytes}};
}

// choices[].logprobs: {"content": [{token, logprob, bytes, top_logprobs: [...]}, ...]}.
json logprobs_json(const std::vector<LogprobEntry>* entries) {
  if (!entries) return nullptr;
  json content = json::array();
  for (const LogprobEntry& entry : *entries) {
    json item = token_json(entry.token);
    json top = json::array();
    for (const TokenChoice& choice : entry.top) top.push_back(token_json(choice));
    item["top_logprobs"] = std::move(top);
    content.push_back(std::move(item));
  }
  return {{"content", std::move(content)}};
}

json chunk(const CompletionIdentity& identity, json choices) {
  return {{"id", identity.id},
          {"object", "chat.completion.chunk"},
          {"created", identity.created},
          {"model", identity.model},
          {"choices", std::move(choices)}};
}

std::string event(const json& value) { return "data: " + dump(value) + "\n\n"; }

json delta_choice(json delta, json finish_reason) {
  return json::array(
      {{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", std::move(finish_reason)}}});
}

}  // namespace

std::string completion_json(const CompletionIdentity& identity, const std::string& text,
                            const std::string& finish_reason, const Usage& usage,
                            const std::vector<LogprobEntry>* logprobs) {
  const json body = {
      {"id", identity.id},
      {"object", "chat.completion"},
      {"created", identity.created},
      {"model", identity.model},
      {"choices", json::array({{{"index", 0},
                                {"message", {{"role", "assistant"}, {"content", text}}},
                                {"logprobs", logprobs_json(logprobs)},
                                {"finish_reason", finish_name(finish_reason)}}})},
      {"usage", usage_json(usage)}};
  return dump(body);
}

std::string sse_role_chunk(const CompletionIdentity& identity) {
  return event(chunk(identity, delta_choice({{"role", "assistant"}, {"content", ""}}, nullptr)));
}

std::string sse_text_chunk(const CompletionIdentity& identity, const std::string& text,
                           const std::vector<LogprobEntry>* logprobs) {
  json choices = delta_choice({{"content", text}}, nullptr);
  if (logprobs) choices[0]["logprobs"] = logprobs_json(logprobs);
  return event(chunk(identity, std::move(choices)));
}

std::string sse_finish_chunk(const CompletionIdentity& identity, const std::string& finish_reason) {
  return event(chunk(identity, delta_choice(json::object(), finish_name(finish_reason))));
}

std::string sse_usage_chunk(const CompletionIdentity& identity, const Usage& usage) {
  json body = chunk(identity, json::array());
  body["usage"] = usage_json(usage);
  return event(body);
}

std::string sse_error(const std::string& message, const std::string& type) {
  return event({{"error", {{"message", message}, {"type", type}, {"param", nullptr}}}});
}

std::string error_json(const std::string& message, const std::string& type,
                       const std::string& param, int code) {
  return dump({{"error",
                {{"message", message},
                 {"type", type},
                 {"param", param.empty() ? json(nullptr) : json(param)},
                 {"code", code}}}});
}

}  // namespace qwenvl
