// Mutation fuzzing of the safetensors header parser: valid files with bytes flipped, inserted,
// deleted, overwritten with interesting values, or truncated. Every outcome must be either a
// successful parse whose offsets lie inside the buffer, or a qwenvl::Error. Anything else (a
// crash, another exception type, a sanitizer report) fails. Seeded, so a failure reproduces.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "checkpoint/safetensors.h"
#include "common/mutate.h"
#include "core/error.h"
#include "test_checkpoints.h"

namespace qwenvl {
namespace {

TEST(SafetensorsFuzz, MutatedHeadersOnlyEverThrowError) {
  const uint32_t seed = 20250125;
  std::mt19937 rng(seed);
  std::vector<std::string> seeds = {
      test::safetensors_bytes({{"a", "BF16", {3, 4}}, {"b", "F32", {5}}}, 1),
      test::safetensors_bytes({{"visual.blocks.0.norm1.weight", "F16", {16}},
                               {"model.embed_tokens.weight", "BF16", {8, 4}},
                               {"lm_head.weight", "F32", {2, 2, 2}}},
                              2, false),
      test::safetensors_bytes({{"x", "F32", {0}}, {"y", "BF16", {1}}}, 3),
  };
  int iterations = 0, parsed = 0, refused = 0;
  auto start = std::chrono::steady_clock::now();
  for (; iterations < 50000; ++iterations) {
    std::string bytes = test::mutate(seeds[rng() % seeds.size()], rng);
    // Keep the length field honest half the time, so mutations reach the JSON and offsets.
    if (rng() % 2 && bytes.size() >= 8) {
      uint64_t n = bytes.size() - 8 - std::min<size_t>(bytes.size() - 8, rng() % 64);
      for (int i = 0; i < 8; ++i) bytes[i] = char((n >> (8 * i)) & 0xff);
    }
    try {
      SafetensorsHeader h = parse_safetensors_header(reinterpret_cast<const uint8_t*>(bytes.data()),
                                                     bytes.size(), "fuzz.safetensors");
      for (const auto& t : h.tensors) {
        ASSERT_LE(t.begin, t.end);
        ASSERT_LE(h.data_offset + t.end, bytes.size());
        ASSERT_EQ(uint64_t(t.shape.numel()) * dtype_size(t.dtype), t.end - t.begin);
      }
      ++parsed;
    } catch (const Error&) {
      ++refused;
    } catch (const std::exception& e) {
      FAIL() << "iteration " << iterations << " (seed " << seed
             << ") threw a non-Error: " << e.what();
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GT(parsed, 100);  // the mutations must also produce valid files, or the test tests little
  EXPECT_GT(refused, 1000);
  EXPECT_LT(seconds, 10.0);
  std::printf("fuzz: %d iterations, %d parsed, %d refused, %.2f s\n", iterations, parsed, refused,
              seconds);
}

}  // namespace
}  // namespace qwenvl
