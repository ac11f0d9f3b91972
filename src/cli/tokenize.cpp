// `qwenvl tokenize`: text -> ids, a one-turn chat prompt -> ids (image pads expanded), or ids ->
// text. Prints what HF tokenizers would give for the same tokenizer.json, so outputs can be
// compared with the reference side by side.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "text/chat.h"
#include "text/tokenizer.h"

namespace qwenvl::cli {

namespace {

constexpr const char* kUsage =
    "usage: qwenvl tokenize --tokenizer PATH (--text TEXT | --file F | --chat-prompt TEXT\n"
    "                       [--image-pads N]... | --decode IDS) [--skip-special] [--json]\n"
    "  PATH is tokenizer.json or the model folder holding it.\n"
    "  --text / --file     encode raw UTF-8 (special tokens in the text are recognised)\n"
    "  --chat-prompt       one user turn in Qwen2.5-VL's chat template with the generation\n"
    "                      prompt; each --image-pads N adds an image (before the text) whose\n"
    "                      <|image_pad|> is repeated N times\n"
    "  --decode IDS        ids separated by commas or spaces -> text\n"
    "  --skip-special      with --decode: drop special tokens\n"
    "  --json              print JSON ({\"ids\": [...]} or {\"text\": ...})\n";

std::vector<int32_t> parse_ids(const std::string& list) {
  std::vector<int32_t> ids;
  std::string token;
  std::istringstream in(list);
  char c;
  auto flush = [&] {
    if (token.empty()) return;
    char* end = nullptr;
    long long v = std::strtoll(token.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > INT32_MAX)
      fail("--decode expects token ids, got '", token, "'");
    ids.push_back(int32_t(v));
    token.clear();
  };
  while (in.get(c)) {
    if (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '[' || c == ']')
      flush();
    else
      token.push_back(c);
  }
  flush();
  return ids;
}

void print_ids(const std::vector<int32_t>& ids, bool as_json, const std::string* prompt) {
  if (as_json) {
    nlohmann::json out = {{"ids", ids}};
    if (prompt) out["text"] = *prompt;
    // Replace rather than throw on bytes that are not UTF-8 (none expected: prompts are text).
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return;
  }
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line += ' ';
    line += std::to_string(ids[i]);
  }
  std::printf("%s\n", line.c_str());
}

}  // namespace

int run_tokenize(int argc, char** argv) {
  Args args(argc, argv, {"tokenizer", "text", "file", "chat-prompt", "image-pads", "decode"},
            {"json", "skip-special", "help"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.positional().empty()) fail("unexpected argument '", args.positional()[0], "'");
  int modes = args.has("text") + args.has("file") + args.has("chat-prompt") + args.has("decode");
  if (modes != 1) fail("give exactly one of --text, --file, --chat-prompt, --decode (see --help)");
  if (args.has("image-pads") && !args.has("chat-prompt"))
    fail("--image-pads goes with --chat-prompt");
  if (args.has("skip-special") && !args.has("decode")) fail("--skip-special goes with --decode");
  Tokenizer tokenizer = Tokenizer::load(args.require("tokenizer"));
  bool as_json = args.has("json");

  if (auto ids = args.get("decode")) {
    std::string text = tokenizer.decode(parse_ids(*ids), args.has("skip-special"));
    if (as_json)
      std::printf("%s\n", nlohmann::json({{"text", text}}).dump().c_str());
    else
      std::fwrite(text.data(), 1, text.size(), stdout), std::fputc('\n', stdout);
    return 0;
  }
  if (auto prompt = args.get("chat-prompt")) {
    ChatMessage user{"user", {}};
    std::vector<int64_t> counts;
    for (const std::string& n : args.all("image-pads")) {
      char* end = nullptr;
      long long v = std::strtoll(n.c_str(), &end, 10);
      if (n.empty() || *end != '\0' || v <= 0)
        fail("--image-pads expects a positive token count, got '", n, "'");
      counts.push_back(v);
      user.parts.push_back(ChatPart{ChatPart::Kind::Image, ""});
    }
    user.parts.push_back(ChatPart{ChatPart::Kind::Text, *prompt});
    std::vector<ChatMessage> chat = {user};
    std::string rendered = render_chat(chat, true);
    print_ids(chat_prompt_ids(tokenizer, chat, counts, true), as_json, &rendered);
    return 0;
  }
  std::string text =
      args.has("text") ? args.require("text") : read_prompt_file(args.require("file"), "--file");
  print_ids(tokenizer.encode(text), as_json, nullptr);
  return 0;
}

}  // namespace qwenvl::cli
