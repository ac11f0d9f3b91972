// Tokenizer: encode (added tokens -> NFC -> Qwen2 split -> byte-level BPE) and decode, matching
// HF tokenizers' TokenizerImpl::encode / decode for tokenizer.json's pipeline.
#include "text/tokenizer.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file_read.h"
#include "text/byte_level.h"
#include "text/normalize.h"
#include "text/pretokenize.h"
#include "text/tokenizer_impl.h"
#include "text/unicode_classes.h"
#include "text/utf8.h"

namespace qwenvl {

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::string& tokenizer_json_path) {
  std::string path = tokenizer_json_path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    path = (std::filesystem::path(path) / "tokenizer.json").string();
  const std::string text = read_text_file(path, kMaxTokenizerFileBytes, "tokenizer file");
  // The code-point class table takes ~12 ms to build: pay it while loading, not in the first
  // encode (which a request's time to first token would otherwise include).
  unicode::class_table();
  return Tokenizer(parse_tokenizer_json(text, path));
}

void Tokenizer::Impl::encode_piece(std::string_view piece, std::vector<int32_t>& out,
                                   WordCache* word_cache) const {
  if (ignore_merges) {
    auto it = id_of_text.find(byte_level::from_bytes(piece));
    if (it != id_of_text.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (!word_cache || piece.size() > WordCache::kMaxPieceBytes) {
    bpe.encode_word(piece, out);
    return;
  }
  uint64_t hash = WordCache::hash(piece);
  if (const std::vector<int32_t>* ids = word_cache->find(piece, hash)) {
    for (int32_t id : *ids) out.push_back(id);  // mostly 1-2 ids: cheaper than insert's memmove
    return;
  }
  size_t before = out.size();
  bpe.encode_word(piece, out);
  word_cache->store(piece, hash, out.data() + before, out.size() - before);
}

void Tokenizer::Impl::encode_pretokenized(std::string_view text, std::vector<int32_t>& out,
                                          WordCache* word_cache) const {
  size_t i = 0;
  while (i < text.size()) {
    size_t end = qwen2_piece_end(text, i);
    encode_piece(text.substr(i, end - i), out, word_cache);
    i = end;
  }
}

// A stretch of text between raw added tokens: normalize, find normalized added tokens, split.
void Tokenizer::Impl::encode_segment(std::string_view text, std::vector<int32_t>& out,
                                     WordCache* word_cache) const {
  std::string normalized;
  if (normalize_nfc && !nfc_unchanged(text)) {
    normalized = nfc(text);
    text = normalized;
  }
  if (normalized_matcher.empty()) {
    encode_pretokenized(text, out, word_cache);
    return;
  }
  std::vector<TextSegment> segments;
  normalized_matcher.split(text, segments);
  for (const TextSegment& s : segments) {
    if (s.id >= 0)
      out.push_back(s.id);
    else
      encode_pretokenized(text.substr(s.begin, s.end - s.begin), out, word_cache);
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::make_valid(text);
    text = repaired;
  }
  std::unique_lock<std::mutex> lock(impl_->cache_mutex, std::try_to_lock);
  WordCache* word_cache = lock.owns_lock() ? &impl_->cache : nullptr;

  std::vector<int32_t> out;
  out.reserve(text.size() / 2 + 4);  // ~3 bytes per token in practice; one allocation
  if (impl_->raw_matcher.empty()) {
    impl_->encode_segment(text, out, word_cache);
    return out;
  }
  std::vector<TextSegment> segments;
  impl_->raw_matcher.split(text, segments);
  for (const TextSegment& s : segments) {
    if (s.id >= 0)
      out.push_back(s.id);
    else
      impl_->encode_segment(text.substr(s.begin, s.end - s.begin), out, word_cache);
  }
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || size_t(id) + 1 >= impl_->token_offsets.size()) return {};
  uint32_t begin = impl_->token_offsets[size_t(id)], end = impl_->token_offsets[size_t(id) + 1];
  return impl_->token_bytes.substr(begin, end - begin);
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    // Ids the vocabulary lacks decode to nothing, as in HF (a model's embedding table is often
    // larger than its vocabulary, so a sampler can produce them).
    if (id < 0 || size_t(id) + 1 >= impl_->token_offsets.size()) continue;
    if (skip_special_tokens && impl_->special[size_t(id)]) continue;
    uint32_t begin = impl_->token_offsets[size_t(id)], end = impl_->token_offsets[size_t(id) + 1];
    bytes.append(impl_->token_bytes, begin, end - begin);
  }
  return utf8::is_valid(bytes) ? bytes : utf8::make_valid(bytes);
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->special.size() && impl_->special[size_t(id)];
}

int32_t Tokenizer::token_id(std::string_view token) const {
  auto it = impl_->id_of_text.find(std::string(token));
  if (it == impl_->id_of_text.end())
    fail("token '", token, "' is not in the tokenizer's vocabulary or added tokens");
  return it->second;
}

size_t Tokenizer::vocab_size() const { return impl_->token_offsets.size() - 1; }

std::string StreamingDecoder::push(int32_t id) {
  pending_ += tokenizer_.token_bytes(id);
  size_t keep = utf8::incomplete_tail_length(pending_);
  std::string ready =
      utf8::make_valid(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return ready;
}

std::string StreamingDecoder::finish() {
  std::string rest = utf8::make_valid(pending_);
  pending_.clear();
  return rest;
}

}  // namespace qwenvl
