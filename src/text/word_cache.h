#pragma once
// A bounded memo of BPE results per pre-tokenized piece. Text repeats its words, so most pieces
// are looked up, not merged. Direct-mapped: a piece has one slot, a newcomer overwrites it, and
// slots keep their buffers, so a warm cache allocates nothing.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qwenvl {

class WordCache {
 public:
  static constexpr size_t kMaxPieceBytes = 64;  // longer pieces are rare; not worth a slot

  explicit WordCache(size_t slots_log2 = 15) : slots_(size_t(1) << slots_log2) {}

  // The cached ids of `piece`, or nullptr.
  const std::vector<int32_t>* find(std::string_view piece, uint64_t hash) const {
    const Slot& s = slots_[hash & (slots_.size() - 1)];
    return s.hash == hash && s.key == piece ? &s.ids : nullptr;
  }
  void store(std::string_view piece, uint64_t hash, const int32_t* ids, size_t count) {
    Slot& s = slots_[hash & (slots_.size() - 1)];
    s.hash = hash;
    s.key.assign(piece.data(), piece.size());
    s.ids.assign(ids, ids + count);
  }

  static uint64_t hash(std::string_view piece) {  // FNV-1a, then a multiply to spread the bits
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : piece) h = (h ^ c) * 0x100000001b3ull;
    return (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    std::string key;
    std::vector<int32_t> ids;
  };
  std::vector<Slot> slots_;
};

}  // namespace qwenvl
