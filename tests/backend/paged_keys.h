#pragma once
// Keys and values moved into a paged cache for attention tests (AttentionSegments::block_table):
// each segment's keys, consecutive rows from cu_k[s] in k and v (f32, host), go to blocks of
// `block` rows of a larger pool, the blocks in shuffled order; rows no segment uses hold a large
// value, so that a kernel reading the wrong row fails loudly.
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace qwenvl::test {

struct PagedKeys {
  Tensor k, v;   // [pool rows, heads_kv, head_dim]
  Tensor table;  // I32 [segments, blocks per segment]; unused entries -1
};

inline PagedKeys page_keys(const Tensor& k, const Tensor& v, const std::vector<int32_t>& cu_k,
                           int block, uint32_t seed) {
  const int segments = int(cu_k.size()) - 1;
  int64_t stride = 1, blocks = 2;  // two spare blocks nobody reads
  for (int s = 0; s < segments; ++s) {
    const int64_t used = (cu_k[size_t(s) + 1] - cu_k[size_t(s)] + block - 1) / block;
    stride = std::max(stride, used + 1);
    blocks += used;
  }
  std::vector<int32_t> order(static_cast<size_t>(blocks));
  for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(i);
  std::shuffle(order.begin(), order.end(), std::mt19937(seed));
  const int64_t row = k.numel() / std::max<int64_t>(1, k.dim(0));
  PagedKeys out;
  out.k = Tensor::empty({blocks * block, k.dim(1), k.dim(2)}, DType::F32);
  out.v = Tensor::empty({blocks * block, v.dim(1), v.dim(2)}, DType::F32);
  std::fill_n(out.k.data<float>(), out.k.numel(), 7.0f);
  std::fill_n(out.v.data<float>(), out.v.numel(), 7.0f);
  out.table = Tensor::empty({segments, stride}, DType::I32);
  int32_t* table = out.table.data<int32_t>();
  std::fill_n(table, out.table.numel(), -1);
  size_t next = 0;
  for (int s = 0; s < segments; ++s)
    for (int32_t j = 0; j < cu_k[size_t(s) + 1] - cu_k[size_t(s)]; ++j) {
      if (j % block == 0) table[s * stride + j / block] = order[next++];
      const int64_t dst = int64_t(table[s * stride + j / block]) * block + j % block;
      const int64_t src = cu_k[size_t(s)] + j;
      std::copy_n(k.data<float>() + src * row, row, out.k.data<float>() + dst * row);
      std::copy_n(v.data<float>() + src * row, row, out.v.data<float>() + dst * row);
    }
  return out;
}

}  // namespace qwenvl::test
