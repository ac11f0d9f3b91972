// The tokenizer and chat format against what HF tokenizers / transformers produced for the same
// inputs (tests/fixtures, written by tools/make_reference.py; formats in docs/FIXTURES.md).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "text/chat.h"
#include "text/tokenizer.h"
#include "text_test_util.h"

namespace qwenvl {
namespace {

using nlohmann::json;
using test::fixture_path;
using test::qwen_tokenizer;

// Lines of a .jsonl fixture; skips the test when the file was not generated.
std::vector<json> read_jsonl(const std::string& relative) {
  std::vector<json> rows;
  std::ifstream in(fixture_path(relative));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

bool present(const std::string& relative) {
  return std::filesystem::exists(fixture_path(relative));
}

std::string ids_str(const std::vector<int32_t>& ids) { return json(ids).dump(); }

TEST(ReferenceFixtures, CorpusEncodesLikeHf) {
  if (!present("tokenizer/corpus.jsonl")) GTEST_SKIP() << "tokenizer/corpus.jsonl not generated";
  const Tokenizer& tok = qwen_tokenizer();
  std::vector<json> rows = read_jsonl("tokenizer/corpus.jsonl");
  ASSERT_GT(rows.size(), 1000u);
  int failures = 0;
  for (const json& row : rows) {
    std::string bytes = test::base64_decode(row.at("utf8_b64").get<std::string>());
    std::vector<int32_t> want = row.at("ids").get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok.encode(bytes);
    if (got != want && ++failures <= 20)
      ADD_FAILURE() << row.at("name") << ": got " << ids_str(got) << "\nwant " << ids_str(want);
  }
  EXPECT_EQ(failures, 0) << "of " << rows.size() << " cases";
}

TEST(ReferenceFixtures, DecodeLikeHf) {
  if (!present("tokenizer/decode.jsonl")) GTEST_SKIP() << "tokenizer/decode.jsonl not generated";
  const Tokenizer& tok = qwen_tokenizer();
  std::vector<json> rows = read_jsonl("tokenizer/decode.jsonl");
  ASSERT_FALSE(rows.empty());
  int failures = 0;
  for (const json& row : rows) {
    std::vector<int32_t> ids = row.at("ids").get<std::vector<int32_t>>();
    std::string want = test::base64_decode(row.at("text_b64").get<std::string>());
    std::string got = tok.decode(ids);
    if (got != want && ++failures <= 20)
      ADD_FAILURE() << ids_str(ids) << ": got '" << got << "' want '" << want << "'";
    // Streaming the same ids must give the same text.
    StreamingDecoder stream(tok);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    if (streamed != want && ++failures <= 20)
      ADD_FAILURE() << ids_str(ids) << ": streamed '" << streamed << "' want '" << want << "'";
  }
  EXPECT_EQ(failures, 0) << "of " << rows.size() << " cases";
}

// HF message content (a string, or a list of {"type": ...} items) as the template reads it.
std::vector<ChatMessage> to_messages(const json& messages) {
  std::vector<ChatMessage> out;
  for (const json& m : messages) {
    ChatMessage message;
    message.role = m.at("role").get<std::string>();
    const json& content = m.at("content");
    if (content.is_string()) {
      message.parts.push_back(ChatPart{ChatPart::Kind::Text, content.get<std::string>()});
    } else {
      for (const json& item : content) {
        std::string type = item.value("type", "");
        if (type == "image" || item.contains("image") || item.contains("image_url"))
          message.parts.push_back(ChatPart{ChatPart::Kind::Image, ""});
        else if (type == "video" || item.contains("video"))
          message.parts.push_back(ChatPart{ChatPart::Kind::Video, ""});
        else if (item.contains("text"))
          message.parts.push_back(ChatPart{ChatPart::Kind::Text, item["text"].get<std::string>()});
      }
    }
    out.push_back(std::move(message));
  }
  return out;
}

TEST(ReferenceFixtures, ChatTemplateAndPromptIdsLikeTransformers) {
  if (!present("chat/conversations.json")) GTEST_SKIP() << "chat/conversations.json not generated";
  const Tokenizer& tok = qwen_tokenizer();
  json cases = json::parse(test::read_file(fixture_path("chat/conversations.json")));
  ASSERT_FALSE(cases.empty());
  for (const json& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    std::vector<ChatMessage> messages = to_messages(c.at("messages"));
    EXPECT_EQ(render_chat(messages, true), c.at("text").get<std::string>());
    // Merge size 2: each 2x2 block of patches is one token (t*h*w / 4).
    std::vector<int64_t> counts;
    for (const json& thw : c.value("image_grid_thw", json::array()))
      counts.push_back(thw[0].get<int64_t>() * thw[1].get<int64_t>() * thw[2].get<int64_t>() / 4);
    std::vector<int32_t> want = c.at("input_ids").get<std::vector<int32_t>>();
    EXPECT_EQ(ids_str(chat_prompt_ids(tok, messages, counts, true)), ids_str(want));
  }
}

}  // namespace
}  // namespace qwenvl
