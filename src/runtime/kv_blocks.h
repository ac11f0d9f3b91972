#pragma once
// The KV cache's blocks (kKvBlockSize rows each) handed out to the sequences that share it, each
// sequence holding a block table: its cache position p lives in row
// table[p / kKvBlockSize] · kKvBlockSize + p % kKvBlockSize. Blocks are taken as sequences grow
// and returned when one ends.
//
// Prefix cache: a full block whose keys are computed can be published under the hash of
// everything that determined them (its tokens and images, chained with every block before it).
// Another sequence whose prompt hashes the same takes the block into its table instead of computing
// it again; blocks count their holders. A published block no sequence holds stays cached until a
// grow needs it: free blocks are taken first, then cached ones, the least recently released first.
#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

#include "model/qwen2_5_vl.h"
#include "runtime/content_hash.h"

namespace qwenvl {

using BlockTable = std::vector<int32_t>;

class KvBlocks {
 public:
  explicit KvBlocks(int64_t blocks);

  int64_t total() const { return total_; }
  // Blocks a grow may take: free ones and cached ones that no sequence holds.
  int64_t free() const { return int64_t(free_.size() + idle_.size()); }
  int64_t cached() const { return int64_t(by_hash_.size()); }  // published blocks
  // Blocks a table needs beyond what it holds to cover `tokens` positions.
  static int64_t missing(const BlockTable& table, int64_t tokens);
  // Grows `table` to cover `tokens` positions; false, taking nothing, when too few are free.
  bool grow(BlockTable& table, int64_t tokens);
  void release(BlockTable& table);  // every block back; the table empties

  // Appends to `table` the published blocks of `hashes`, in order, up to the first not found;
  // returns how many it appended.
  int64_t reuse(BlockTable& table, std::span<const ContentHash> hashes);
  // Publishes `block` (held, full, its keys computed) under `hash`. A hash already published
  // keeps its block; this one stays private.
  void publish(int32_t block, const ContentHash& hash);

 private:
  int32_t take();
  void unpublish(int32_t block);

  int64_t total_;
  std::vector<int32_t> free_;      // taken from the back: the lowest ids first
  std::vector<int32_t> holders_;   // per block: the tables holding it
  std::vector<ContentHash> hash_;  // per block, where published_[b]
  std::vector<uint8_t> published_;
  std::unordered_map<ContentHash, int32_t, ContentHashOf> by_hash_;
  std::list<int32_t> idle_;  // published blocks without holders, the most recently released first
  std::vector<std::list<int32_t>::iterator> idle_at_;  // per block, where in idle_
};

// The cache row of position p of a sequence.
inline int32_t kv_row(const BlockTable& table, int64_t p) {
  return table[size_t(p / kKvBlockSize)] * kKvBlockSize + int32_t(p % kKvBlockSize);
}

}  // namespace qwenvl
