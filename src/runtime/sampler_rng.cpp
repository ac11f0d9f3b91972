#include "runtime/sampler_rng.h"

namespace qwenvl {

namespace {
// Sebastiano Vigna's splitmix64 finaliser: a bijective mix with good avalanche.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

float SamplerRng::uniform(uint64_t step) const {
  const uint64_t bits = mix64(seed_ + (step + 1) * 0x9E3779B97F4A7C15ull);
  return float(bits >> 40) * (1.0f / 16777216.0f);
}

}  // namespace qwenvl
