#include "text/bpe.h"

#include <algorithm>

namespace qwenvl {

namespace {

inline uint64_t mix(uint64_t x) {  // splitmix64 finalizer: spreads pair keys over the table
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// One queued candidate merge, as HF's Merge: ordered by rank, then by position.
struct Candidate {
  uint32_t rank;
  uint32_t pos;
  int32_t merged;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

struct Symbol {
  int32_t id;
  int32_t prev, next;  // indices into the symbol array; -1 at the ends
  uint32_t len;        // 0 once merged into its left neighbour
};

}  // namespace

BpeModel::BpeModel(const int32_t (&byte_ids)[256], const std::vector<Merge>& merges) {
  std::copy(std::begin(byte_ids), std::end(byte_ids), byte_ids_);
  size_t size = 16;
  while (size < merges.size() * 3) size <<= 1;
  table_.assign(size, Slot{});
  mask_ = size - 1;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Merge& m = merges[rank];
    uint64_t key = pair_key(m.left, m.right);
    for (uint64_t h = mix(key) & mask_;; h = (h + 1) & mask_) {
      Slot& slot = table_[h];
      if (slot.key == key) {  // a repeated pair: the last one wins, as in HF's HashMap
        slot = Slot{key, uint32_t(rank), m.merged};
        break;
      }
      if (slot.key == kEmpty) {
        slot = Slot{key, uint32_t(rank), m.merged};
        break;
      }
    }
  }
}

const BpeModel::Slot* BpeModel::find(int32_t left, int32_t right) const {
  uint64_t key = pair_key(left, right);
  for (uint64_t h = mix(key) & mask_;; h = (h + 1) & mask_) {
    const Slot& slot = table_[h];
    if (slot.key == key) return &slot;
    if (slot.key == kEmpty) return nullptr;
  }
}

void BpeModel::encode_word(std::string_view bytes, std::vector<int32_t>& out) const {
  size_t n = bytes.size();
  if (n == 0) return;
  if (n == 1) {
    out.push_back(byte_ids_[static_cast<unsigned char>(bytes[0])]);
    return;
  }
  // Scratch space reused across calls on this thread: no allocation once warm.
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> queue;
  symbols.resize(n);
  queue.clear();
  for (size_t i = 0; i < n; ++i)
    symbols[i] = Symbol{byte_ids_[static_cast<unsigned char>(bytes[i])], int32_t(i) - 1,
                        i + 1 < n ? int32_t(i + 1) : -1, 1};
  auto greater = [](const Candidate& a, const Candidate& b) { return a > b; };
  for (size_t i = 0; i + 1 < n; ++i)
    if (const Slot* s = find(symbols[i].id, symbols[i + 1].id))
      queue.push_back(Candidate{s->rank, uint32_t(i), s->merged});
  std::make_heap(queue.begin(), queue.end(), greater);

  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), greater);
    Candidate top = queue.back();
    queue.pop_back();
    Symbol& left = symbols[top.pos];
    if (left.len == 0 || left.next < 0) continue;
    Symbol right = symbols[size_t(left.next)];
    // A stale entry: the pair at this position changed since it was queued.
    const Slot* now = find(left.id, right.id);
    if (!now || now->merged != top.merged) continue;
    symbols[size_t(left.next)].len = 0;
    left.id = top.merged;
    left.len += right.len;
    left.next = right.next;
    if (right.next >= 0) symbols[size_t(right.next)].prev = int32_t(top.pos);
    if (left.prev >= 0) {
      if (const Slot* s = find(symbols[size_t(left.prev)].id, left.id)) {
        queue.push_back(Candidate{s->rank, uint32_t(left.prev), s->merged});
        std::push_heap(queue.begin(), queue.end(), greater);
      }
    }
    if (left.next >= 0) {
      if (const Slot* s = find(left.id, symbols[size_t(left.next)].id)) {
        queue.push_back(Candidate{s->rank, top.pos, s->merged});
        std::push_heap(queue.begin(), queue.end(), greater);
      }
    }
  }
  for (int32_t i = 0; i >= 0; i = symbols[size_t(i)].next) out.push_back(symbols[size_t(i)].id);
}

}  // namespace qwenvl
