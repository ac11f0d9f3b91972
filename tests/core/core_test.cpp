#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/half.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

namespace qwenvl {
namespace {

TEST(Half, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 lies exactly between two bf16 values: ties go to the even mantissa (1.0).
  EXPECT_EQ(float_to_bf16(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 3.0f / 256), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
}

TEST(Half, Fp16RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint32_t exp = (h >> 10) & 0x1f;
    if (exp == 31 && (h & 0x3ff)) continue;  // NaN payloads need not survive
    ASSERT_EQ(float_to_fp16(fp16_to_float(uint16_t(h))), h) << h;
  }
}

TEST(Half, Fp16RoundsLikeACast) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-70000.0f, 70000.0f);
  for (int i = 0; i < 100000; ++i) {
    float x = dist(rng) * (i % 3 == 0 ? 1e-6f : 1.0f);
    uint16_t h = float_to_fp16(x);
    float back = fp16_to_float(h);
    if (std::fabs(x) >= 65520.0f) {
      EXPECT_TRUE(std::isinf(back)) << x;
      continue;
    }
    // No other half is closer to x than the one we picked.
    float up = fp16_to_float(uint16_t(h + 1)), down = fp16_to_float(uint16_t(h - 1));
    EXPECT_LE(std::fabs(back - x), std::fabs(up - x) + 1e-12f) << x;
    if ((h & 0x7fff) != 0) {
      EXPECT_LE(std::fabs(back - x), std::fabs(down - x) + 1e-12f) << x;
    }
  }
}

TEST(Dtype, ParsesSafetensorsNamesAndRejectsOthers) {
  EXPECT_EQ(parse_dtype("BF16"), DType::BF16);
  EXPECT_EQ(parse_dtype("F16"), DType::F16);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
  EXPECT_THROW(parse_dtype("F8_E4M3"), Error);
}

TEST(Tensor, RowsAndViewsShareStorage) {
  Tensor t = Tensor::empty({4, 3}, DType::F32);
  for (int i = 0; i < 12; ++i) t.data<float>()[i] = float(i);
  Tensor r = t.rows(2, 2);
  EXPECT_EQ(r.shape(), Shape({2, 3}));
  EXPECT_EQ(r.data<float>()[0], 6.0f);
  EXPECT_EQ(t.view({3, 4}).dim(-1), 4);
  EXPECT_THROW(t.view({5, 2}), Error);
  EXPECT_THROW(t.rows(3, 2), Error);
}

TEST(ThreadPool, CoversEveryIndexOnce) {
  ThreadPool pool(4);
  for (int64_t n : {1, 3, 7, 1000, 12345}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.parallel_for(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    });
    for (auto& h : hits) ASSERT_EQ(h.load(), 1);
  }
}

}  // namespace
}  // namespace qwenvl

namespace qwenvl {
namespace {

TEST(ThreadPool, ConcurrentAndNestedCallersAllFinish) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  auto work = [&] {
    for (int r = 0; r < 50; ++r)
      pool.parallel_for(64, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          pool.parallel_for(4, 1, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
        }
      });
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  EXPECT_EQ(total.load(), 2 * 50 * 64 * 4);
}

}  // namespace
}  // namespace qwenvl
