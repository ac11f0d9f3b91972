// Reads tokenizer.json into Tokenizer::Impl, refusing what this implementation does not do: the
// pipeline must be Qwen2's (NFC, the Split pattern below, ByteLevel, BPE).
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/byte_level.h"
#include "text/normalize.h"
#include "text/pretokenize.h"
#include "text/tokenizer_impl.h"
#include "text/tokenizer_json.h"

namespace qwenvl {

namespace {

using nlohmann::json;

// The member `name` of object j, or null; by reference (json::value() would copy the vocabulary).
const json& member(const json& j, const char* name) {
  static const json null_value;
  auto it = j.find(name);
  return it == j.end() ? null_value : *it;
}

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                                                                      : "";
}

bool is_null_or_empty(const json& j) {
  return j.is_null() || (j.is_string() && j.get_ref<const std::string&>().empty());
}

bool flag(const json& j, const char* name, bool fallback) {
  auto it = j.find(name);
  return it == j.end() || it->is_null() ? fallback : it->get<bool>();
}

void check_normalizer(const json& root, const std::string& path, Tokenizer::Impl& impl) {
  const json& n = member(root, "normalizer");
  if (n.is_null()) return;
  if (type_of(n) != "NFC")
    fail(path, ": normalizer '", type_of(n),
         "' is not supported (qwenvl implements NFC, as Qwen2 "
         "declares)");
  impl.normalize_nfc = true;
}

void check_pre_tokenizer(const json& root, const std::string& path) {
  const json& p = member(root, "pre_tokenizer");
  auto refuse = [&] {
    fail(path,
         ": pre_tokenizer is not Qwen2's Sequence[Split(pattern, Isolated), "
         "ByteLevel(use_regex=false)], the only one qwenvl implements");
  };
  if (type_of(p) != "Sequence" || !p.contains("pretokenizers") || p["pretokenizers"].size() != 2)
    refuse();
  const json& split = p["pretokenizers"][0];
  const json& bytes = p["pretokenizers"][1];
  if (type_of(split) != "Split" || split.value("behavior", "") != "Isolated" ||
      flag(split, "invert", false) || !split.contains("pattern") ||
      !split["pattern"].contains("Regex") ||
      split["pattern"]["Regex"].get<std::string>() != kQwen2SplitPattern)
    refuse();
  if (type_of(bytes) != "ByteLevel" || flag(bytes, "add_prefix_space", false) ||
      flag(bytes, "use_regex", true))
    refuse();
  const json& d = member(root, "decoder");
  if (!d.is_null() && type_of(d) != "ByteLevel")
    fail(path, ": decoder '", type_of(d), "' is not supported (qwenvl implements ByteLevel)");
}

void load_model(const TokenizerJson& doc, const std::string& path, Tokenizer::Impl& impl,
                std::vector<std::string>& text_of_id) {
  const json& model = member(doc.rest, "model");
  if (type_of(model) != "BPE")
    fail(path, ": model type '", type_of(model), "' is not supported (qwenvl implements BPE)");
  if (!member(model, "dropout").is_null() || flag(model, "byte_fallback", false) ||
      !is_null_or_empty(member(model, "continuing_subword_prefix")) ||
      !is_null_or_empty(member(model, "end_of_word_suffix")))
    fail(path, ": BPE options (dropout, byte_fallback, subword prefix/suffix) are not supported");
  impl.ignore_merges = flag(model, "ignore_merges", false);
  if (!member(model, "vocab").is_object() || !member(model, "merges").is_array())
    fail(path, ": model.vocab must be an object and model.merges a list");

  impl.id_of_text.reserve(doc.vocab.size() + 1024);
  for (const auto& [text, id] : doc.vocab) {
    if (id < 0 || id > 10'000'000) fail(path, ": vocabulary id ", id, " is out of range");
    if (size_t(id) >= text_of_id.size()) text_of_id.resize(size_t(id) + 1);
    text_of_id[size_t(id)] = text;
    impl.id_of_text.emplace(text, int32_t(id));
  }
  int32_t byte_ids[256];
  for (int b = 0; b < 256; ++b) {
    auto it = impl.id_of_text.find(byte_level::from_bytes(std::string(1, char(b))));
    if (it == impl.id_of_text.end())
      fail(path, ": the vocabulary lacks the token of byte ", b, "; not a byte-level BPE");
    byte_ids[b] = it->second;
  }
  std::vector<BpeModel::Merge> merges;
  merges.reserve(doc.merges.size());
  std::string joined;
  for (const auto& [left, right] : doc.merges) {
    joined.assign(left).append(right);
    auto l = impl.id_of_text.find(left), r = impl.id_of_text.find(right),
         merged = impl.id_of_text.find(joined);
    if (l == impl.id_of_text.end() || r == impl.id_of_text.end() || merged == impl.id_of_text.end())
      fail(path, ": merge '", left, " ", right, "' uses a token missing from the vocabulary");
    merges.push_back(BpeModel::Merge{l->second, r->second, merged->second});
  }
  impl.bpe = BpeModel(byte_ids, merges);
}

void load_added_tokens(const json& root, const std::string& path, Tokenizer::Impl& impl,
                       std::vector<std::string>& text_of_id, std::vector<AddedToken>& added) {
  const json& tokens = member(root, "added_tokens");
  if (!tokens.is_null() && !tokens.is_array()) fail(path, ": added_tokens is not a list");
  for (const json& t : tokens) {
    AddedToken token;
    token.id = t.at("id").get<int32_t>();
    token.content = t.at("content").get<std::string>();
    token.special = flag(t, "special", false);
    token.single_word = flag(t, "single_word", false);
    token.lstrip = flag(t, "lstrip", false);
    token.rstrip = flag(t, "rstrip", false);
    token.normalized = flag(t, "normalized", !token.special);
    if (token.id < 0 || token.id > 10'000'000 || token.content.empty())
      fail(path, ": added token ", t.dump(), " has a bad id or empty content");
    if (size_t(token.id) >= text_of_id.size()) text_of_id.resize(size_t(token.id) + 1);
    text_of_id[size_t(token.id)] = token.content;
    impl.id_of_text[token.content] = token.id;
    added.push_back(token);
  }
}

// Raw bytes per id, as HF's ByteLevel decoder turns a token into bytes: through the byte-level
// alphabet when every character is in it, else the token's own UTF-8.
void build_token_bytes(const std::vector<std::string>& text_of_id, Tokenizer::Impl& impl) {
  impl.token_offsets.assign(text_of_id.size() + 1, 0);
  for (size_t id = 0; id < text_of_id.size(); ++id) {
    impl.token_offsets[id] = uint32_t(impl.token_bytes.size());
    auto bytes = byte_level::to_bytes(text_of_id[id]);
    impl.token_bytes += bytes ? *bytes : text_of_id[id];
  }
  impl.token_offsets.back() = uint32_t(impl.token_bytes.size());
}

void build_matchers(const std::vector<AddedToken>& added, Tokenizer::Impl& impl) {
  std::vector<AddedToken> raw, normalized;
  std::vector<std::string> raw_patterns, normalized_patterns;
  // HF orders special tokens before the others; with the longest-match rule the order only
  // decides between identical patterns.
  for (int pass = 0; pass < 2; ++pass) {
    for (const AddedToken& t : added) {
      if (t.special != (pass == 0)) continue;
      if (t.normalized) {
        normalized.push_back(t);
        normalized_patterns.push_back(impl.normalize_nfc ? nfc(t.content) : t.content);
      } else {
        raw.push_back(t);
        raw_patterns.push_back(t.content);
      }
    }
  }
  impl.raw_matcher = AddedTokenMatcher(std::move(raw), std::move(raw_patterns));
  impl.normalized_matcher =
      AddedTokenMatcher(std::move(normalized), std::move(normalized_patterns));
}

}  // namespace

std::unique_ptr<Tokenizer::Impl> parse_tokenizer_json(const std::string& json_text,
                                                      const std::string& path) {
  auto impl = std::make_unique<Tokenizer::Impl>();
  try {
    TokenizerJson doc = read_tokenizer_json(json_text, path);
    const json& root = doc.rest;
    check_normalizer(root, path, *impl);
    check_pre_tokenizer(root, path);
    std::vector<std::string> text_of_id;
    std::vector<AddedToken> added;
    load_model(doc, path, *impl, text_of_id);
    load_added_tokens(root, path, *impl, text_of_id, added);
    build_token_bytes(text_of_id, *impl);
    impl->special.assign(text_of_id.size(), 0);
    for (const AddedToken& t : added) impl->special[size_t(t.id)] = t.special;
    build_matchers(added, *impl);
  } catch (const json::exception& e) {  // a field of the wrong type
    fail(path, " is not a valid tokenizer.json: ", e.what());
  }
  return impl;
}

}  // namespace qwenvl
