// attention against a naive double-precision softmax(q·kᵀ·scale + mask)·v: causal with a
// cached prefix, grouped-query heads, many small segments (vision windows), decode with key splits,
// and queries that see no key at all.
#include <cmath>

#include "core/thread_pool.h"
#include "cpu_test_support.h"
#include "paged_keys.h"

namespace qwenvl::test {
namespace {

struct Case {
  std::vector<std::pair<int, int>> segments;  // (queries, keys) per segment
  int hq, hkv, d;
  bool causal;
};

class CpuAttentionTest : public CpuTest {
 protected:
  void check(const Case& c) {
    SCOPED_TRACE(cat("segments=", c.segments.size(), " hq=", c.hq, " hkv=", c.hkv, " d=", c.d,
                     " causal=", c.causal, " threads=", ThreadPool::global().size(),
                     " isa=", cpu_isa_name(active_cpu_isa())));
    const int s_count = int(c.segments.size());
    Tensor cu_q = Tensor::empty({s_count + 1}, DType::I32),
           cu_k = Tensor::empty({s_count + 1}, DType::I32);
    int nq = 0, nk = 0, max_q = 0, max_k = 0;
    for (int s = 0; s <= s_count; ++s) {
      cu_q.data<int32_t>()[s] = nq;
      cu_k.data<int32_t>()[s] = nk;
      if (s == s_count) break;
      nq += c.segments[s].first;
      nk += c.segments[s].second;
      max_q = std::max(max_q, c.segments[s].first);
      max_k = std::max(max_k, c.segments[s].second);
    }
    Tensor q = random({nq, c.hq, c.d}, DType::F32, -2, 2);
    Tensor k = random({nk, c.hkv, c.d}, DType::F32, -2, 2);
    Tensor v = random({nk, c.hkv, c.d}, DType::F32);
    Tensor out = Tensor::empty({nq, c.hq, c.d}, DType::F32);
    AttentionSegments seg{
        cu_q, cu_k, s_count, max_q, max_k, c.causal, float(1 / std::sqrt(double(c.d))), {}, 0};
    backend_.attention(q, k, v, seg, out);

    std::vector<double> want(out.numel(), 0.0);
    const int group = c.hq / c.hkv;
    for (int s = 0; s < s_count; ++s) {
      const int q0 = cu_q.data<int32_t>()[s], k0 = cu_k.data<int32_t>()[s];
      const int sq = c.segments[s].first, sk = c.segments[s].second;
      for (int h = 0; h < c.hq; ++h)
        for (int i = 0; i < sq; ++i) {
          const int visible = c.causal ? std::clamp(i + sk - sq + 1, 0, sk) : sk;
          std::vector<double> score(visible);
          double mx = -INFINITY, total = 0;
          for (int j = 0; j < visible; ++j) {
            double dot = 0;
            for (int e = 0; e < c.d; ++e)
              dot += get(q, ((q0 + i) * c.hq + h) * c.d + e) *
                     get(k, ((k0 + j) * c.hkv + h / group) * c.d + e);
            score[j] = dot * seg.scale;
            mx = std::max(mx, score[j]);
          }
          for (double& x : score) total += x = std::exp(x - mx);
          for (int e = 0; e < c.d; ++e) {
            double o = 0;
            for (int j = 0; j < visible; ++j)
              o += score[j] / total * get(v, ((k0 + j) * c.hkv + h / group) * c.d + e);
            want[((q0 + i) * c.hq + h) * c.d + e] = o;
          }
        }
    }
    expect_close(out, want, {}, 1e-5, 2e-6, "attention");
  }
};

TEST_F(CpuAttentionTest, FullAttentionOverOneSegment) {
  check({{{37, 37}}, 4, 4, 80, false});
  check({{{300, 300}}, 2, 2, 16, false});  // several key blocks
}

TEST_F(CpuAttentionTest, CausalPrefillAfterACachedPrefixWithGroupedHeads) {
  for (CpuIsa isa : supported_isas()) {
    set_cpu_isa(isa);
    check({{{20, 50}}, 8, 2, 64, true});
    check({{{150, 290}}, 4, 1, 32, true});  // query and key blocks cut inside the causal edge
    check({{{3, 200}, {1, 1}, {40, 40}}, 7, 1, 24, true});  // dot path (few queries) and gemm path
  }
}

TEST_F(CpuAttentionTest, ManySmallSegmentsLikeVisionWindows) {
  Case c{{}, 4, 4, 80, false};
  for (int s = 0; s < 25; ++s) {
    const int n = uniform_int(1, 64);
    c.segments.push_back({n, n});
  }
  check(c);
}

TEST_F(CpuAttentionTest, DecodeSplitsLongContextsOverThreads) {
  for (int threads : {2, 5}) {
    ThreadPool::set_global_threads(threads);
    check({{{1, 1300 + uniform_int(0, 500)}}, 4, 1, 64, true});
    check({{{1, 2100}, {1, 7}, {1, 600}}, 8, 2, 128, true});
  }
  ThreadPool::set_global_threads(0);
}

TEST_F(CpuAttentionTest, QueriesThatSeeNoKeyGetZeros) {
  check({{{6, 2}}, 2, 2, 16, true});  // bottom-right: the first four queries see nothing
  check({{{0, 0}, {3, 0}, {2, 5}}, 2, 1, 16, false});
}

// The same segments with their keys in blocks of a shared cache, in shuffled order
// (AttentionSegments::block_table), against the keys in consecutive rows.
TEST_F(CpuAttentionTest, PagedKeysMatchConsecutiveKeys) {
  const std::vector<std::pair<int, int>> segments{{1, 300}, {1, 1}, {17, 130}, {1, 64}, {40, 40}};
  const int hq = 4, hkv = 2, d = 32, block = 16;
  const int s_count = int(segments.size());
  std::vector<int32_t> q_offsets{0}, k_offsets{0};
  int max_q = 0, max_k = 0;
  for (auto [nq, nk] : segments) {
    q_offsets.push_back(q_offsets.back() + nq), k_offsets.push_back(k_offsets.back() + nk);
    max_q = std::max(max_q, nq), max_k = std::max(max_k, nk);
  }
  auto ints = [](const std::vector<int32_t>& values) {
    Tensor t = Tensor::empty({int64_t(values.size())}, DType::I32);
    std::copy(values.begin(), values.end(), t.data<int32_t>());
    return t;
  };
  Tensor q = random({q_offsets.back(), hq, d}, DType::F32, -2, 2);
  Tensor k = random({k_offsets.back(), hkv, d}, DType::F32, -2, 2);
  Tensor v = random({k_offsets.back(), hkv, d}, DType::F32);
  const float scale = float(1 / std::sqrt(double(d)));
  AttentionSegments consecutive{
      ints(q_offsets), ints(k_offsets), s_count, max_q, max_k, true, scale, {}, 0};
  Tensor want = Tensor::empty({q_offsets.back(), hq, d}, DType::F32);
  backend_.attention(q, k, v, consecutive, want);

  PagedKeys pool = page_keys(k, v, k_offsets, block, uint32_t(uniform_int(0, 1 << 20)));
  AttentionSegments paged = consecutive;
  paged.block_table = pool.table;
  paged.block_size = block;
  Tensor got = Tensor::empty(want.shape(), DType::F32);
  backend_.attention(q, pool.k, pool.v, paged, got);
  std::vector<double> expected(size_t(want.numel()));
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = want.data<float>()[i];
  expect_close(got, expected, {}, 1e-5, 1e-6, "paged attention");

  pool.table.data<int32_t>()[0] = int32_t(pool.k.dim(0) / block);  // past the pool
  EXPECT_THROW(backend_.attention(q, pool.k, pool.v, paged, got), Error);
}

TEST_F(CpuAttentionTest, RejectsBadSegments) {
  Tensor q = random({4, 2, 8}, DType::F32), k = random({4, 1, 8}, DType::F32);
  Tensor v = random({4, 1, 8}, DType::F32), out = Tensor::empty({4, 2, 8}, DType::F32);
  Tensor cu = Tensor::empty({2}, DType::I32);
  cu.data<int32_t>()[0] = 0;
  cu.data<int32_t>()[1] = 5;  // past the 4 tokens
  AttentionSegments seg{cu, cu, 1, 5, 5, false, 1.0f, {}, 0};
  EXPECT_THROW(backend_.attention(q, k, v, seg, out), Error);
}

}  // namespace
}  // namespace qwenvl::test
