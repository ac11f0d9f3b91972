#pragma once
// The uniform draws behind sampling: a counter-based generator, so the draw for step i depends
// only on (seed, i), never on how many draws came before or which backend samples. Every backend
// then picks the same token from the same logits.
//
// draw(i) = the top 24 bits of splitmix64(seed + (i + 1) · 0x9E3779B97F4A7C15) / 2^24: a value in
// [0, 1) exactly representable as a float (24 bits fill a float's significand, so rounding never
// reaches 1.0).
#include <cstdint>

namespace qwenvl {

class SamplerRng {
 public:
  explicit SamplerRng(uint64_t seed) : seed_(seed) {}
  float uniform(uint64_t step) const;
  uint64_t seed() const { return seed_; }

 private:
  uint64_t seed_;
};

}  // namespace qwenvl
