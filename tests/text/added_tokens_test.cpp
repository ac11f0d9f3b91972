// The added-token flags the Qwen vocabulary leaves off (lstrip, rstrip, single_word, normalized),
// on a small byte-level tokenizer built here: byte b is id b, merge "a b" -> "ab" is id 300.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "text/byte_level.h"
#include "text/pretokenize.h"
#include "text/tokenizer.h"

namespace qwenvl {
namespace {

using Ids = std::vector<int32_t>;

Tokenizer small_tokenizer() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level::from_bytes(std::string(1, char(b)))] = b;
  vocab["ab"] = 300;
  auto token = [](int id, const char* content, bool lstrip, bool rstrip, bool single_word,
                  bool normalized) {
    return nlohmann::json{
        {"id", id},         {"content", content},         {"lstrip", lstrip},
        {"rstrip", rstrip}, {"single_word", single_word}, {"normalized", normalized},
        {"special", true}};
  };
  nlohmann::json doc = {
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", std::string(kQwen2SplitPattern)}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"},
           {"add_prefix_space", false},
           {"trim_offsets", false},
           {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", nlohmann::json::array({nlohmann::json::array({"a", "b"})})}}},
      {"added_tokens",
       {token(400, "<l>", true, false, false, false), token(401, "<r>", false, true, false, false),
        token(402, "tok", false, false, true, false),
        token(403, "\xC3\xA9!", false, false, false, true)}},
  };
  std::string path = testing::TempDir() + "/qwenvl_small_tokenizer.json";
  FILE* f = std::fopen(path.c_str(), "wb");
  std::string text = doc.dump();
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  return Tokenizer::load(path);
}

TEST(AddedTokenFlags, StripsAndSingleWordAsHf) {
  Tokenizer tok = small_tokenizer();
  EXPECT_EQ(tok.encode("ab"), (Ids{300}));
  // lstrip: the spaces before <l> belong to the token.
  EXPECT_EQ(tok.encode("x  <l>y"), (Ids{'x', 400, 'y'}));
  // rstrip: the spaces after <r> belong to the token.
  EXPECT_EQ(tok.encode("x<r>  y"), (Ids{'x', 401, 'y'}));
  // Without the flags the spaces stay text (" " then " y" after the regex).
  EXPECT_EQ(tok.encode("x<r> <l>"), (Ids{'x', 401, 400}));
  // single_word: only where no word character touches it.
  EXPECT_EQ(tok.encode("tok x"), (Ids{402, ' ', 'x'}));
  EXPECT_EQ(tok.encode("atok"), (Ids{'a', 't', 'o', 'k'}));
  EXPECT_EQ(tok.encode("tok_"), (Ids{'t', 'o', 'k', '_'}));
  // normalized: matched in the NFC text, so the decomposed spelling finds it too.
  EXPECT_EQ(tok.encode("\xC3\xA9!"), (Ids{403}));
  EXPECT_EQ(tok.encode("e\xCC\x81!"), (Ids{403}));
  EXPECT_EQ(tok.decode({'x', 400, 'y'}), "x<l>y");
}

}  // namespace
}  // namespace qwenvl
