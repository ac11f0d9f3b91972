#include "text/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "core/error.h"
#include "text/normalize.h"
#include "text/utf8.h"
#include "text_test_util.h"

namespace qwenvl {
namespace {

using test::qwen_tokenizer;
using Ids = std::vector<int32_t>;

TEST(Tokenizer, KnownIdsFromTheVocabulary) {
  const Tokenizer& tok = qwen_tokenizer();
  // tokenizer.json: "Hello" = 9707, "Ġworld" = 1879 (Ġ is the byte-level space).
  EXPECT_EQ(tok.encode("Hello world"), (Ids{9707, 1879}));
  EXPECT_EQ(tok.token_id("Hello"), 9707);
  EXPECT_EQ(tok.token_id("\xC4\xA0world"), 1879);
  // Digits are split one by one; the space before them stands alone ("Ġ" = 220).
  EXPECT_EQ(tok.encode(" 12"), (Ids{220, 16, 17}));
  // NFC: "e" + COMBINING ACUTE becomes "é", whose bytes C3 A9 are the vocabulary's "Ã©" = 963.
  EXPECT_EQ(tok.encode("e\xCC\x81"), (Ids{963}));
  EXPECT_EQ(tok.token_id("\xC3\x83\xC2\xA9"), 963);
}

TEST(Tokenizer, SpecialTokensAreMatchedFirst) {
  const Tokenizer& tok = qwen_tokenizer();
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 151643);
  EXPECT_EQ(tok.token_id("<|im_start|>"), 151644);
  EXPECT_EQ(tok.token_id("<|im_end|>"), 151645);
  EXPECT_EQ(tok.token_id("<|image_pad|>"), 151655);
  EXPECT_EQ(tok.encode("<|im_start|>user\n"), (Ids{151644, 872, 198}));
  EXPECT_EQ(tok.encode("<|im_end|><|endoftext|>"), (Ids{151645, 151643}));
  // Glued to words, and the non-special added tokens too.
  Ids glued = tok.encode("x<think>y");
  ASSERT_EQ(glued.size(), 3u);
  EXPECT_EQ(glued[1], tok.token_id("<think>"));
  // Not quite a special token: ordinary BPE.
  for (int32_t id : tok.encode("<|im_end|")) EXPECT_LT(id, 151643);
  EXPECT_TRUE(tok.is_special(151645));
  EXPECT_FALSE(tok.is_special(tok.token_id("<think>")));
  EXPECT_FALSE(tok.is_special(9707));
  EXPECT_EQ(tok.vocab_size(), 151669u);
}

TEST(Tokenizer, UnknownTokenTextIsAnError) {
  EXPECT_THROW(qwen_tokenizer().token_id("<|no_such_token|>"), Error);
}

TEST(Tokenizer, DecodeInvertsEncodeUpToNfc) {
  const Tokenizer& tok = qwen_tokenizer();
  const char* texts[] = {
      "Hello world",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",  // 你好，世界
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",  // ZWJ family
      "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xF0\x9F\x87\xAF\xF0\x9F\x87\xB5",  // skin tone, flag
      "a\r\nb\r\n\r\n  c\t\td   ",
      "def f(x):\n    return {\"a\": [1, 2]}  # done\n",
      "caf\x65\xCC\x81 \xE1\x84\x80\xE1\x85\xA1",  // decomposed é, Hangul jamo
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
      "   \n\n\n    ",
      "DON'T it'S 1,000,000.50",
  };
  for (const char* text : texts) {
    Ids ids = tok.encode(text);
    EXPECT_EQ(tok.decode(ids), nfc(text)) << text;
  }
}

TEST(Tokenizer, RandomTextRoundTrips) {
  const Tokenizer& tok = qwen_tokenizer();
  std::mt19937 rng(std::random_device{}());
  const char32_t alphabet[] = {'a',  'Z',    '0',    ' ',     '\n',   '\t',   '\'',   '.',
                               0xE9, 0x4E16, 0x3000, 0x1F600, 0x200D, 0x0301, 0xAC00, 0x0627};
  for (int round = 0; round < 200; ++round) {
    std::string text;
    int n = int(rng() % 40);
    for (int i = 0; i < n; ++i) utf8::append(text, alphabet[rng() % std::size(alphabet)]);
    EXPECT_EQ(tok.decode(tok.encode(text)), nfc(text)) << text;
  }
}

TEST(Tokenizer, InvalidUtf8IsReplacedBeforeEncoding) {
  const Tokenizer& tok = qwen_tokenizer();
  EXPECT_EQ(tok.encode("ab\xFF"
                       "cd"),
            tok.encode("ab\xEF\xBF\xBD"
                       "cd"));
  EXPECT_EQ(tok.encode("\xE4\xB8"), tok.encode("\xEF\xBF\xBD"));
  EXPECT_EQ(tok.decode(tok.encode("x\x80y")), "x\xEF\xBF\xBDy");
}

TEST(Tokenizer, DecodeReplacesBrokenBytesAndSkipsSpecials) {
  const Tokenizer& tok = qwen_tokenizer();
  Ids thumbs = tok.encode("\xF0\x9F\xAB\xA0");  // U+1FAE0, one emoji in three byte tokens
  ASSERT_GT(thumbs.size(), 1u);
  EXPECT_EQ(tok.decode({thumbs[0]}), "\xEF\xBF\xBD");
  Ids chat = tok.encode("<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(tok.decode(chat), "<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(tok.decode(chat, /*skip_special_tokens=*/true), "user\nhi");
  // Non-special added tokens stay.
  EXPECT_EQ(tok.decode(tok.encode("<think>x</think>"), true), "<think>x</think>");
  // Ids past the vocabulary decode to nothing, as in HF.
  EXPECT_EQ(tok.decode({9707, 152000, -1, 1879}), "Hello world");
  EXPECT_EQ(tok.token_bytes(1879), " world");
  EXPECT_EQ(tok.token_bytes(151645), "<|im_end|>");
}

TEST(Tokenizer, LongInputsStayFast) {
  const Tokenizer& tok = qwen_tokenizer();
  std::string word(20000, 'a');  // one piece: the heap-based merge keeps this near-linear
  Ids ids = tok.encode(word);
  EXPECT_EQ(tok.decode(ids), word);
  EXPECT_LT(ids.size(), word.size() / 4);
}

TEST(Tokenizer, LoadRefusesWhatItCannotRead) {
  EXPECT_THROW(Tokenizer::load("/nonexistent/tokenizer.json"), Error);
  std::string path = testing::TempDir() + "/qwenvl_bad_tokenizer.json";
  auto write = [&](const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  };
  write("{not json");
  EXPECT_THROW(Tokenizer::load(path), Error);
  write(R"({"model": {"type": "Unigram", "vocab": []}})");
  EXPECT_THROW(Tokenizer::load(path), Error);
  write(R"({"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE"}})");
  EXPECT_THROW(Tokenizer::load(path), Error);
}

TEST(Tokenizer, LoadAcceptsAModelFolder) {
  Tokenizer tok = Tokenizer::load(test::fixture_path("tokenizer"));
  EXPECT_EQ(tok.encode("Hello world"), (Ids{9707, 1879}));
}

}  // namespace
}  // namespace qwenvl
