#pragma once
// The state behind Tokenizer (private to src/text): what tokenizer.json declares, in the shapes
// the encode and decode paths want.
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/added_tokens.h"
#include "text/bpe.h"
#include "text/tokenizer.h"
#include "text/word_cache.h"

namespace qwenvl {

struct Tokenizer::Impl {
  bool normalize_nfc = false;
  bool ignore_merges = false;  // BPE option: a piece that is itself in the vocabulary is one id

  BpeModel bpe;
  // Token text as tokenizer.json spells it (byte-level for the vocabulary) -> id.
  std::unordered_map<std::string, int32_t> id_of_text;

  // Raw bytes of every id, HF's ByteLevel decoder applied: token_bytes_[offsets_[id]...].
  std::string token_bytes;
  std::vector<uint32_t> token_offsets;  // size = vocab_size + 1
  std::vector<uint8_t> special;         // per id: 1 for added tokens marked special

  AddedTokenMatcher raw_matcher;         // added tokens with normalized == false
  AddedTokenMatcher normalized_matcher;  // the others, matched in NFC text

  mutable std::mutex cache_mutex;  // one encode at a time uses the cache; others go without
  mutable WordCache cache;

  void encode_segment(std::string_view text, std::vector<int32_t>& out, WordCache* cache) const;
  void encode_pretokenized(std::string_view text, std::vector<int32_t>& out,
                           WordCache* cache) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out, WordCache* cache) const;
};

// Builds the Impl from tokenizer.json's text; Error naming the problem and `path`.
std::unique_ptr<Tokenizer::Impl> parse_tokenizer_json(const std::string& json_text,
                                                      const std::string& path);

}  // namespace qwenvl
