#pragma once
// Byte-level BPE as tokenizer.json declares it (Qwen2): NFC normalizer, the Split pre-tokenizer
// regex, ByteLevel mapping, BPE merges by rank, added tokens matched before everything else.
// Same ids as Hugging Face `tokenizers`.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qwenvl {

class Tokenizer {
 public:
  static Tokenizer load(const std::string& tokenizer_json_path);  // Error on a bad file
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Raw UTF-8 in (invalid sequences become U+FFFD, as Python's decode("utf-8", "replace")),
  // ids out; added/special tokens in the text are recognised.
  std::vector<int32_t> encode(std::string_view text) const;
  // Bytes of the tokens concatenated, invalid UTF-8 replaced by U+FFFD (HF decode).
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The raw bytes a token stands for (special tokens: their text).
  std::string token_bytes(int32_t id) const;
  bool is_special(int32_t id) const;
  // Id of a vocabulary or added token given by its text ("<|im_end|>"); Error when unknown.
  int32_t token_id(std::string_view token) const;
  size_t vocab_size() const;  // highest id + 1

  struct Impl;  // defined in text/tokenizer_impl.h, private to src/text

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns a stream of ids into text pieces that are always whole UTF-8 characters: a token that
// ends inside a multi-byte character is held back until the character completes.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t id);  // the newly completed text (may be empty)
  std::string finish();          // whatever is left, incomplete bytes as U+FFFD

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
};

}  // namespace qwenvl
