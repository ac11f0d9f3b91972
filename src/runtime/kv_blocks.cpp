#include "runtime/kv_blocks.h"

#include "core/error.h"

namespace qwenvl {

KvBlocks::KvBlocks(int64_t blocks)
    : total_(blocks),
      holders_(size_t(blocks), 0),
      hash_(size_t(blocks)),
      published_(size_t(blocks), 0),
      idle_at_(size_t(blocks)) {
  QWENVL_CHECK(blocks >= 1 && blocks <= INT32_MAX / kKvBlockSize, blocks, " KV blocks");
  for (int64_t b = blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

int64_t KvBlocks::missing(const BlockTable& table, int64_t tokens) {
  const int64_t needed = (tokens + kKvBlockSize - 1) / kKvBlockSize;
  return needed > int64_t(table.size()) ? needed - int64_t(table.size()) : 0;
}

void KvBlocks::unpublish(int32_t block) {
  by_hash_.erase(hash_[size_t(block)]);
  published_[size_t(block)] = 0;
}

int32_t KvBlocks::take() {
  int32_t block;
  if (!free_.empty()) {
    block = free_.back();
    free_.pop_back();
  } else {
    block = idle_.back();
    idle_.pop_back();
    unpublish(block);
  }
  holders_[size_t(block)] = 1;
  return block;
}

bool KvBlocks::grow(BlockTable& table, int64_t tokens) {
  const int64_t more = missing(table, tokens);
  if (more > free()) return false;
  for (int64_t i = 0; i < more; ++i) table.push_back(take());
  return true;
}

void KvBlocks::release(BlockTable& table) {
  for (auto it = table.rbegin(); it != table.rend(); ++it) {
    const int32_t block = *it;
    QWENVL_CHECK(holders_[size_t(block)] > 0, "block ", block, " released but not held");
    if (--holders_[size_t(block)] > 0) continue;
    if (published_[size_t(block)]) {
      idle_.push_front(block);
      idle_at_[size_t(block)] = idle_.begin();
    } else {
      free_.push_back(block);
    }
  }
  table.clear();
}

int64_t KvBlocks::reuse(BlockTable& table, std::span<const ContentHash> hashes) {
  int64_t reused = 0;
  for (const ContentHash& hash : hashes) {
    auto found = by_hash_.find(hash);
    if (found == by_hash_.end()) break;
    const int32_t block = found->second;
    if (holders_[size_t(block)]++ == 0) idle_.erase(idle_at_[size_t(block)]);
    table.push_back(block);
    ++reused;
  }
  return reused;
}

void KvBlocks::publish(int32_t block, const ContentHash& hash) {
  QWENVL_CHECK(holders_[size_t(block)] > 0, "block ", block, " published but not held");
  if (published_[size_t(block)] || by_hash_.count(hash)) return;
  by_hash_.emplace(hash, block);
  hash_[size_t(block)] = hash;
  published_[size_t(block)] = 1;
}

}  // namespace qwenvl
