#include "server/openai_request.h"

#include <nlohmann/json.hpp>

#include "runtime/sampling_limits.h"

namespace qwenvl {

namespace {

using nlohmann::json;

// At most this many stop strings, each at most this long: the filter holds back text the length
// of the longest, and checks each per token.
constexpr size_t kMaxStopStrings = 16;
constexpr size_t kMaxStopLength = 1024;

template <typename... Parts>
[[noreturn]] void bad(const std::string& param, const Parts&... parts) {
  throw ParamError(param, cat(parts...));
}

const char* type_name(const json& value) { return value.type_name(); }

double number(const json& body, const std::string& key, double fallback,
              const SettingRange& range) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number()) bad(key, "'", key, "' must be a number, got ", type_name(*it));
  const double value = it->get<double>();
  if (!range.holds(value))
    bad(key, "'", key, "' must be in [", range.min, ", ", range.max, "], got ", value);
  return value;
}

int64_t integer(const json& body, const std::string& key, int64_t fallback, int64_t min,
                int64_t max) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) bad(key, "'", key, "' must be an integer, got ", type_name(*it));
  if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(max))
    bad(key, "'", key, "' must be at most ", max);
  const int64_t value = it->get<int64_t>();
  if (value < min || value > max)
    bad(key, "'", key, "' must be in [", min, ", ", max, "], got ", value);
  return value;
}

bool boolean(const json& body, const std::string& key, bool fallback) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) bad(key, "'", key, "' must be true or false, got ", type_name(*it));
  return it->get<bool>();
}

const json* object(const json& body, const std::string& key) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  if (!it->is_object()) bad(key, "'", key, "' must be an object, got ", type_name(*it));
  return &*it;
}

// min_pixels / max_pixels of an object (an image part or mm_processor_kwargs), 0 when absent.
void pixel_bounds(const json& holder, const std::string& where, int64_t max_image_pixels,
                  int64_t& min_pixels, int64_t& max_pixels) {
  const int64_t cap = max_image_pixels > 0 ? max_image_pixels : kMaxResizedPixels;
  min_pixels = integer(holder, "min_pixels", min_pixels, 1, cap);
  max_pixels = integer(holder, "max_pixels", max_pixels, 1, cap);
  if (min_pixels && max_pixels && min_pixels > max_pixels)
    bad(where, where, ": min_pixels (", min_pixels, ") exceeds max_pixels (", max_pixels, ")");
}

std::vector<std::string> stop_strings(const json& body) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  std::vector<std::string> stops;
  if (it->is_string()) {
    stops.push_back(it->get<std::string>());
  } else if (it->is_array()) {
    if (it->size() > kMaxStopStrings)
      bad("stop", "'stop' has ", it->size(), " strings; at most ", kMaxStopStrings);
    for (const json& s : *it) {
      if (!s.is_string()) bad("stop", "'stop' must be a string or a list of strings");
      stops.push_back(s.get<std::string>());
    }
  } else {
    bad("stop", "'stop' must be a string or a list of strings, got ", type_name(*it));
  }
  for (const std::string& s : stops) {
    if (s.empty()) bad("stop", "'stop' strings must not be empty");
    if (s.size() > kMaxStopLength)
      bad("stop", "'stop' strings must be at most ", kMaxStopLength, " bytes");
  }
  return stops;
}

// One content part of a message: text, or an image (OpenAI's image_url, with Qwen's per-image
// min_pixels / max_pixels beside the url, in the part or in image_url).
void add_part(const json& part, const std::string& param, ChatMessage& message, ChatRequest& chat,
              const RequestDefaults& defaults) {
  if (!part.is_object()) bad(param, param, " must be an object");
  const auto type = part.find("type");
  if (type == part.end() || !type->is_string()) bad(param, param, " has no 'type'");
  if (*type == "text") {
    const auto text = part.find("text");
    if (text == part.end() || !text->is_string()) bad(param, param, ": 'text' must be a string");
    message.parts.push_back({ChatPart::Kind::Text, text->get<std::string>()});
    return;
  }
  if (*type != "image_url")
    bad(param, param, ": content parts of type '", type->get<std::string>(),
        "' are not supported (text and image_url are)");
  if (message.role != "user") bad(param, param, ": images are accepted in user messages only");
  const auto image_url = part.find("image_url");
  std::string url;
  const json* holder = nullptr;
  if (image_url != part.end() && image_url->is_string()) {
    url = image_url->get<std::string>();
  } else if (image_url != part.end() && image_url->is_object() && image_url->contains("url") &&
             (*image_url)["url"].is_string()) {
    url = (*image_url)["url"].get<std::string>();
    holder = &*image_url;
  } else {
    bad(param, param, ": 'image_url' must be {\"url\": \"data:image/...;base64,...\"}");
  }
  const std::string name = cat("image ", chat.images.size() + 1);
  ImageSource source;
  try {
    source = image_source_from_url(url, name, defaults.media);
  } catch (const ParamError&) {
    throw;
  } catch (const Error& e) {
    throw ParamError(param, e.what());
  }
  pixel_bounds(part, param, defaults.max_image_pixels, source.min_pixels, source.max_pixels);
  if (holder)
    pixel_bounds(*holder, param, defaults.max_image_pixels, source.min_pixels, source.max_pixels);
  chat.images.push_back(std::move(source));
  message.parts.push_back({ChatPart::Kind::Image, ""});
}

void add_messages(const json& body, ChatRequest& chat, const RequestDefaults& defaults) {
  const auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty())
    bad("messages", "'messages' must be a non-empty list");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string param = cat("messages[", i, "]");
    if (!m.is_object()) bad(param, param, " must be an object");
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) bad(param, param, " has no 'role'");
    ChatMessage message{role->get<std::string>(), {}};
    if (message.role == "developer") message.role = "system";  // OpenAI's newer name
    if (message.role != "system" && message.role != "user" && message.role != "assistant")
      bad(param, param, ": role '", message.role, "' is not supported (system, user, assistant)");
    const auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      if (message.role != "assistant") bad(param, param, " has no 'content'");
    } else if (content->is_string()) {
      message.parts.push_back({ChatPart::Kind::Text, content->get<std::string>()});
    } else if (content->is_array()) {
      for (size_t p = 0; p < content->size(); ++p)
        add_part((*content)[p], cat(param, ".content[", p, "]"), message, chat, defaults);
    } else {
      bad(param, param, ": 'content' must be a string or a list of parts");
    }
    chat.messages.push_back(std::move(message));
  }
  if (int64_t(chat.images.size()) > kMaxImagesPerRequest)
    bad("messages", "the request has ", chat.images.size(), " images; at most ",
        kMaxImagesPerRequest, " are accepted");
}

// Fields whose only supported value is their default: anything else is refused rather than
// silently ignored.
void refuse_unsupported(const json& body) {
  if (integer(body, "n", 1, 0, 1 << 20) != 1)
    bad("n", "'n' must be 1: one completion per request is supported");
  const auto tools = body.find("tools");
  if (tools != body.end() && !tools->is_null() && !(tools->is_array() && tools->empty()))
    bad("tools", "'tools' (function calling) is not supported");
}

}  // namespace

CompletionRequest parse_completion_request(const std::string& text,
                                           const RequestDefaults& defaults) {
  const json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) fail("the request body is not valid JSON");
  if (!body.is_object()) fail("the request body must be a JSON object");
  refuse_unsupported(body);

  CompletionRequest out;
  ChatRequest& chat = out.chat;
  chat.preprocess = defaults.preprocess;
  chat.max_context = defaults.max_context;
  chat.max_image_tokens = defaults.max_image_tokens;
  if (const json* kwargs = object(body, "mm_processor_kwargs"))
    pixel_bounds(*kwargs, "mm_processor_kwargs", defaults.max_image_pixels,
                 chat.preprocess.min_pixels, chat.preprocess.max_pixels);
  check_pixel_bounds(chat.preprocess.min_pixels, chat.preprocess.max_pixels, "mm_processor_kwargs");
  add_messages(body, chat, defaults);

  GenerationRequest& gen = out.generation;
  const int64_t max_tokens =
      integer(body, "max_tokens", defaults.default_max_tokens, 1, kMaxNewTokensLimit);
  gen.max_new_tokens = integer(body, "max_completion_tokens", max_tokens, 1, kMaxNewTokensLimit);
  chat.max_new_tokens = gen.max_new_tokens;
  SamplingParams sampling = defaults.generation.sampling();
  sampling.temperature =
      float(number(body, "temperature", sampling.temperature, kTemperatureRange));
  // vLLM's top_k -1 means "off", as our 0 does.
  const int64_t top_k = integer(body, "top_k", sampling.top_k, -1, int64_t(kTopKRange.max));
  sampling.top_k = top_k < 0 ? 0 : int(top_k);
  sampling.top_p = float(number(body, "top_p", sampling.top_p, kTopPRange));
  sampling.min_p = float(number(body, "min_p", sampling.min_p, kMinPRange));
  sampling.repetition_penalty = float(
      number(body, "repetition_penalty", sampling.repetition_penalty, kRepetitionPenaltyRange));
  gen.sampling = effective_sampling(sampling);
  gen.presence_penalty = float(number(body, "presence_penalty", 0.0, kPresencePenaltyRange));
  gen.frequency_penalty = float(number(body, "frequency_penalty", 0.0, kFrequencyPenaltyRange));
  // OpenAI: top_logprobs needs logprobs: true; logprobs alone gives the chosen tokens' only.
  const bool logprobs = boolean(body, "logprobs", false);
  const int64_t top_logprobs = integer(body, "top_logprobs", 0, 0, kMaxTopLogprobs);
  if (!logprobs && body.contains("top_logprobs") && !body["top_logprobs"].is_null())
    bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
  gen.top_logprobs = logprobs ? int(top_logprobs) : -1;
  out.logprobs = logprobs;
  gen.seed = uint64_t(integer(body, "seed", 0, 0, std::numeric_limits<int64_t>::max()));
  gen.stop = stop_strings(body);
  gen.ignore_eos = boolean(body, "ignore_eos", false);
  gen.min_tokens = integer(body, "min_tokens", 0, 0, gen.max_new_tokens);
  gen.eos_token_ids = defaults.eos_ids;

  out.stream = boolean(body, "stream", false);
  if (const json* options = object(body, "stream_options")) {
    if (!out.stream) bad("stream_options", "'stream_options' is only allowed with stream: true");
    out.include_usage = boolean(*options, "include_usage", false);
  }
  return out;
}

}  // namespace qwenvl
