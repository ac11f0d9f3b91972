#pragma once
// Reads tokenizer.json in one streaming pass: the two big parts (model.vocab, ~150k entries, and
// model.merges, ~150k pairs) go straight into flat lists, everything else into a small JSON tree.
// Building the full tree would cost seconds per load; this costs a fraction of one.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace qwenvl {

struct TokenizerJson {
  nlohmann::json rest;  // the document with model.vocab and model.merges emptied
  std::vector<std::pair<std::string, int64_t>> vocab;
  std::vector<std::pair<std::string, std::string>> merges;
};

// Error naming `path` on malformed JSON or a malformed merge.
TokenizerJson read_tokenizer_json(const std::string& text, const std::string& path);

}  // namespace qwenvl
