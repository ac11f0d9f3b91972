#pragma once
// The KV cache's blocks (kKvBlockSize rows each) handed out to the sequences that share it, each
// sequence holding a block table: its cache position p lives in row
// table[p / kKvBlockSize] · kKvBlockSize + p % kKvBlockSize. Blocks are taken as sequences grow
// and all returned when one ends.
#include <cstdint>
#include <vector>

#include "model/qwen2_5_vl.h"

namespace qwenvl {

using BlockTable = std::vector<int32_t>;

class KvBlocks {
 public:
  explicit KvBlocks(int64_t blocks);

  int64_t total() const { return total_; }
  int64_t free() const { return int64_t(free_.size()); }
  // Blocks a table needs beyond what it holds to cover `tokens` positions.
  static int64_t missing(const BlockTable& table, int64_t tokens);
  // Grows `table` to cover `tokens` positions; false, taking nothing, when too few are free.
  bool grow(BlockTable& table, int64_t tokens);
  void release(BlockTable& table);  // every block back; the table empties

 private:
  int64_t total_;
  std::vector<int32_t> free_;  // taken from the back: the lowest ids first
};

// The cache row of position p of a sequence.
inline int32_t kv_row(const BlockTable& table, int64_t p) {
  return table[size_t(p / kKvBlockSize)] * kKvBlockSize + int32_t(p % kKvBlockSize);
}

}  // namespace qwenvl
