#pragma once
// Keyed 128-bit hashes of what the server's caches are keyed by: an image's pixel values, a KV
// block's token ids chained with the blocks before it. The keys are drawn once per process, so a
// client who cannot read them cannot craft content that collides with another client's (which
// would hand it the other's image embeddings or keys).
#include <cstddef>
#include <cstdint>

namespace qwenvl {

struct ContentHash {
  uint64_t high = 0, low = 0;
  bool operator==(const ContentHash&) const = default;
};

struct ContentHashOf {  // for unordered containers
  size_t operator()(const ContentHash& h) const { return size_t(h.low ^ (h.high >> 1)); }
};

class ContentHasher {
 public:
  ContentHasher();                                   // a fresh hash
  explicit ContentHasher(const ContentHash& chain);  // continuing `chain`
  void add(const void* bytes, size_t n);
  void add(uint64_t value) { add(&value, sizeof value); }
  void add(const ContentHash& h) { add(h.high), add(h.low); }
  ContentHash finish() const;

 private:
  uint64_t lanes_[2];
  uint64_t length_ = 0;
};

}  // namespace qwenvl
