#include "runtime/kv_blocks.h"

#include "core/error.h"

namespace qwenvl {

KvBlocks::KvBlocks(int64_t blocks) : total_(blocks) {
  QWENVL_CHECK(blocks >= 1 && blocks <= INT32_MAX / kKvBlockSize, blocks, " KV blocks");
  for (int64_t b = blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));
}

int64_t KvBlocks::missing(const BlockTable& table, int64_t tokens) {
  const int64_t needed = (tokens + kKvBlockSize - 1) / kKvBlockSize;
  return needed > int64_t(table.size()) ? needed - int64_t(table.size()) : 0;
}

bool KvBlocks::grow(BlockTable& table, int64_t tokens) {
  const int64_t more = missing(table, tokens);
  if (more > free()) return false;
  for (int64_t i = 0; i < more; ++i) {
    table.push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void KvBlocks::release(BlockTable& table) {
  for (auto it = table.rbegin(); it != table.rend(); ++it) free_.push_back(*it);
  table.clear();
}

}  // namespace qwenvl
