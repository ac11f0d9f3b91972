#include "runtime/content_hash.h"

#include <cstring>
#include <random>

namespace qwenvl {

namespace {

constexpr uint64_t kOdd[2] = {0x9e3779b97f4a7c15ull, 0xc2b2ae3d27d4eb4full};

struct ProcessKeys {
  uint64_t key[2];
  ProcessKeys() {
    std::random_device entropy;
    for (uint64_t& k : key) k = (uint64_t(entropy()) << 32) ^ entropy();
  }
};

const ProcessKeys& process_keys() {
  static const ProcessKeys keys;
  return keys;
}

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t finalize(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 33);
}

}  // namespace

ContentHasher::ContentHasher() : lanes_{process_keys().key[0], process_keys().key[1]} {}

ContentHasher::ContentHasher(const ContentHash& chain)
    : lanes_{chain.high ^ process_keys().key[0], chain.low ^ process_keys().key[1]} {}

// Two independent lanes of multiply-rotate over 8-byte words (a large image's pixel values take
// a few milliseconds); a trailing partial word is zero-padded and the length folded in at the end.
void ContentHasher::add(const void* bytes, size_t n) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  length_ += n;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, p + i, n - i < 8 ? n - i : 8);
    lanes_[0] = rotl((lanes_[0] ^ word) * kOdd[0], 31);
    lanes_[1] = rotl((lanes_[1] + word) * kOdd[1], 29);
  }
}

ContentHash ContentHasher::finish() const {
  const uint64_t a = finalize(lanes_[0] ^ length_), b = finalize(lanes_[1] + length_);
  return ContentHash{finalize(a ^ rotl(b, 17)), finalize(b ^ rotl(a, 43) ^ kOdd[0])};
}

}  // namespace qwenvl
