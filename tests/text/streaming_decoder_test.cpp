#include <gtest/gtest.h>

#include "text/tokenizer.h"
#include "text/utf8.h"
#include "text_test_util.h"

namespace qwenvl {
namespace {

using test::qwen_tokenizer;

// Streams ids one by one; every piece must be whole UTF-8 and the pieces must add up to decode().
std::string stream_all(const std::vector<int32_t>& ids,
                       std::vector<std::string>* pieces = nullptr) {
  StreamingDecoder decoder(qwen_tokenizer());
  std::string all;
  for (int32_t id : ids) {
    std::string piece = decoder.push(id);
    EXPECT_TRUE(utf8::is_valid(piece));
    EXPECT_EQ(utf8::incomplete_tail_length(piece), 0u);
    if (pieces) pieces->push_back(piece);
    all += piece;
  }
  all += decoder.finish();
  return all;
}

TEST(StreamingDecoder, HoldsBackSplitCharacters) {
  const Tokenizer& tok = qwen_tokenizer();
  // Emoji with skin tone, a ZWJ family, a flag, rare CJK: each spans several byte tokens.
  std::string text =
      "ok \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D"
      "\xF0\x9F\x91\xA7 \xF0\x9F\x87\xAF\xF0\x9F\x87\xB5 \xE9\xBE\x98\xE9\x9D\x90\xE9\xBD\x89";
  std::vector<int32_t> ids = tok.encode(text);
  ASSERT_GT(ids.size(), 8u);
  std::vector<std::string> pieces;
  EXPECT_EQ(stream_all(ids, &pieces), text);
  int empty = 0;
  for (const std::string& p : pieces) empty += p.empty();
  EXPECT_GT(empty, 0);  // some tokens ended mid-character and were held back
}

int32_t byte_token(const Tokenizer& tok, unsigned char b) {
  for (int32_t id = 0; id < int32_t(tok.vocab_size()); ++id)
    if (tok.token_bytes(id) == std::string(1, char(b))) return id;
  ADD_FAILURE() << "no token for byte " << int(b);
  return 0;
}

TEST(StreamingDecoder, SingleByteTokensOfOneCharacter) {
  const Tokenizer& tok = qwen_tokenizer();
  StreamingDecoder decoder(tok);
  const std::string emoji = "\xF0\x9F\x98\x80";
  for (size_t i = 0; i + 1 < emoji.size(); ++i)
    EXPECT_EQ(decoder.push(byte_token(tok, static_cast<unsigned char>(emoji[i]))), "");
  EXPECT_EQ(decoder.push(byte_token(tok, static_cast<unsigned char>(emoji.back()))), emoji);
  EXPECT_EQ(decoder.finish(), "");
}

TEST(StreamingDecoder, BrokenBytesComeOutAsReplacement) {
  const Tokenizer& tok = qwen_tokenizer();
  std::vector<int32_t> thumbs = tok.encode("\xF0\x9F\xAB\xA0");  // three byte tokens
  ASSERT_GE(thumbs.size(), 2u);
  // The first part of the emoji, then a plain word: the held bytes can never complete.
  StreamingDecoder decoder(tok);
  EXPECT_EQ(decoder.push(thumbs[0]), "");
  EXPECT_EQ(decoder.push(tok.token_id("Hello")), "\xEF\xBF\xBDHello");
  EXPECT_EQ(decoder.push(thumbs[0]), "");
  EXPECT_EQ(decoder.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(decoder.finish(), "");
}

TEST(StreamingDecoder, AgreesWithDecodeOnMixedText) {
  const Tokenizer& tok = qwen_tokenizer();
  std::string text =
      "Qwen \xE9\x80\x9A\xE4\xB9\x89\xE5\x8D\x83\xE9\x97\xAE<|im_end|>\n\xE3\x81\x93"
      "\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF \xF0\x9F\xA6\x80 x";
  std::vector<int32_t> ids = tok.encode(text);
  EXPECT_EQ(stream_all(ids), tok.decode(ids));
}

}  // namespace
}  // namespace qwenvl
