#pragma once
// The BPE model of tokenizer.json on raw bytes: a word starts as one symbol per byte and merges
// the adjacent pair of lowest rank until none is left, leftmost first among equal ranks — the
// order of HF tokenizers' Word::merge_all, so ids match it exactly (not only the segmentation).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qwenvl {

class BpeModel {
 public:
  // `byte_ids[b]` is the id of the one-byte token b; merges are given as (left id, right id,
  // merged id) in rank order (rank = index).
  struct Merge {
    int32_t left, right, merged;
  };
  BpeModel() = default;
  BpeModel(const int32_t (&byte_ids)[256], const std::vector<Merge>& merges);

  // Appends the ids of one pre-tokenized piece (its raw bytes) to `out`.
  void encode_word(std::string_view bytes, std::vector<int32_t>& out) const;

 private:
  struct Slot {
    uint64_t key = kEmpty;  // left << 32 | right
    uint32_t rank = 0;
    int32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t(0);

  static uint64_t pair_key(int32_t left, int32_t right) {
    return uint64_t(uint32_t(left)) << 32 | uint32_t(right);
  }
  const Slot* find(int32_t left, int32_t right) const;

  int32_t byte_ids_[256] = {};
  std::vector<Slot> table_;  // open addressing, linear probing; size a power of two
  uint64_t mask_ = 0;
};

}  // namespace qwenvl
