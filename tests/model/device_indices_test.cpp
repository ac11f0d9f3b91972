// make_segments: launch bounds and the leading single-query segments of a batch (its decode rows,
// which a backend may run with a decode kernel apart from the prompt rows after them).
#include "model/device_indices.h"

#include <gtest/gtest.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"

namespace qwenvl {
namespace {

AttentionSegments segments_of(const std::vector<int32_t>& cu_q, const std::vector<int32_t>& cu_k) {
  CpuBackend cpu;
  cpu.reserve(0, 0, size_t(1) << 20);
  AttentionSegments s = make_segments(cpu, cu_q, cu_k, true, 1.0f);
  // Only the launch bounds are read: the index tensors go with the backend.
  s.cu_q = s.cu_k = Tensor();
  return s;
}

TEST(MakeSegments, MarksTheLeadingSingleQuerySegments) {
  // Three decode rows (700, 30 and 2,500 keys), a 200-row prompt chunk, then a one-row segment
  // after it, which is not leading.
  const AttentionSegments s = segments_of({0, 1, 2, 3, 203, 204}, {0, 700, 730, 3230, 4130, 4140});
  EXPECT_EQ(s.segments, 5);
  EXPECT_EQ(s.max_q, 200);
  EXPECT_EQ(s.max_k, 2500);
  EXPECT_EQ(s.single_query_segments, 3);
  EXPECT_EQ(s.single_query_max_k, 2500);
}

TEST(MakeSegments, APromptFirstHasNoSingleQuerySegments) {
  const AttentionSegments s = segments_of({0, 64, 65}, {0, 64, 65});
  EXPECT_EQ(s.single_query_segments, 0);
  EXPECT_EQ(s.single_query_max_k, 0);
}

TEST(MakeSegments, EveryDecodeRowIsSingle) {
  const AttentionSegments s = segments_of({0, 1, 2}, {0, 9, 20});
  EXPECT_EQ(s.max_q, 1);
  EXPECT_EQ(s.single_query_segments, 2);
  EXPECT_EQ(s.single_query_max_k, 11);
}

}  // namespace
}  // namespace qwenvl
