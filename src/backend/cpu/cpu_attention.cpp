// Attention over variable-length segments, flash-attention style, in fp32:
//   out = softmax(q·kᵀ·scale + mask)·v within each segment, the mask causal (bottom-right
//   aligned: query i of a segment with nq queries and nk keys sees keys j <= i + nk - nq) or none.
// Queries are taken in blocks; each block walks its keys in blocks of kKeyBlock with an online
// softmax (running max m, running sum l, unnormalised output O), so memory per thread is
// O(block) whatever the segment length: no [n, n] score matrix is ever formed.
//
// Work items are (segment, kv head, query block, key split). One item serves every query head
// of its kv head group (GQA), so each key/value block is read once per group. Decode (one query
// per segment) splits the keys of a segment over several items when there are too few items to
// occupy the threads; their partial (m, l, O) are merged at the end.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_checks.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

constexpr int64_t kKeyBlock = 128;
constexpr int64_t kRowsPerItem = 64;  // query rows (queries × group heads) per work item
constexpr int64_t kMinKeysPerSplit = 512;
constexpr int64_t kGemmMinQueries = 4;  // from here on sgemm beats per-row dot/axpy kernels
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct Layout {
  int64_t hq, hkv, group, d, dv;
  int64_t q_stride, k_stride, v_stride;  // floats between consecutive tokens
  float scale;
  bool causal;
  int64_t block_size;  // paged keys (AttentionSegments::block_table); 0: contiguous
};

// One item's queries and keys, in token indices local to the segment.
struct Item {
  int64_t seg_q0, seg_k0;  // first query / key token of the segment in q / k (seg_k0: unpaged)
  const int32_t* blocks;   // paged: the segment's block table row; null: keys from seg_k0 on
  int64_t nq, nk;          // segment lengths
  int64_t kv_head;
  int64_t q_begin, q_count;
  int64_t k_begin, k_end;
};

// Per-thread state of one item: rows are ordered head-major (row = hh * q_count + i).
struct Accumulator {
  float* scores;  // [rows, kKeyBlock]
  float* out;     // [rows, dv]
  float* max;     // [rows]
  float* sum;     // [rows]
};

size_t accumulator_floats(int64_t rows, int64_t dv) { return size_t(rows) * (kKeyBlock + dv + 2); }

Accumulator carve(float* base, int64_t rows, int64_t dv) {
  return {base, base + rows * kKeyBlock, base + rows * (kKeyBlock + dv),
          base + rows * (kKeyBlock + dv + 1)};
}

const float* q_row(const float* q, const Layout& L, const Item& it, int64_t hh, int64_t i) {
  return q + (it.seg_q0 + it.q_begin + i) * L.q_stride + (it.kv_head * L.group + hh) * L.d;
}

// Runs one item's key range through the online softmax into `acc`.
void attend_item(const float* q, const float* k, const float* v, const Layout& L, const Item& it,
                 Accumulator& acc) {
  const CpuKernels& kern = cpu_kernels();
  const int64_t rows = L.group * it.q_count;
  std::fill(acc.out, acc.out + rows * L.dv, 0.0f);
  std::fill(acc.max, acc.max + rows, kNegInf);
  std::fill(acc.sum, acc.sum + rows, 0.0f);
  const int64_t offset = it.nk - it.nq;  // causal: query i sees keys j <= i + offset
  const bool use_gemm = it.q_count >= kGemmMinQueries;

  for (int64_t k0 = it.k_begin, kn = 0; k0 < it.k_end; k0 += kn) {
    // A block of keys in consecutive rows: within one page when the keys are paged.
    kn = std::min(kKeyBlock, it.k_end - k0);
    int64_t row = it.seg_k0 + k0;
    if (it.blocks) {
      kn = std::min(kn, L.block_size - k0 % L.block_size);
      row = int64_t(it.blocks[k0 / L.block_size]) * L.block_size + k0 % L.block_size;
    }
    const float* kb = k + row * L.k_stride + it.kv_head * L.d;
    const float* vb = v + row * L.v_stride + it.kv_head * L.dv;
    // scores = scale · q kᵀ
    for (int64_t hh = 0; hh < L.group; ++hh) {
      float* s = acc.scores + hh * it.q_count * kKeyBlock;
      if (use_gemm) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(it.q_count), int(kn), int(L.d),
                    L.scale, q_row(q, L, it, hh, 0), int(L.q_stride), kb, int(L.k_stride), 0.0f, s,
                    int(kKeyBlock));
      } else {
        for (int64_t i = 0; i < it.q_count; ++i)
          for (int64_t j = 0; j < kn; ++j)
            s[i * kKeyBlock + j] =
                L.scale * kern.dot_f32(q_row(q, L, it, hh, i), kb + j * L.k_stride, L.d);
      }
    }
    // mask, online softmax; scores become probabilities (unnormalised)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = it.q_begin + r % it.q_count;
      float* s = acc.scores + r * kKeyBlock;
      const int64_t visible = L.causal ? std::clamp<int64_t>(i + offset + 1 - k0, 0, kn) : kn;
      for (int64_t j = visible; j < kn; ++j) s[j] = kNegInf;
      float block_max = kNegInf;
      for (int64_t j = 0; j < visible; ++j) block_max = std::max(block_max, s[j]);
      const float new_max = std::max(acc.max[r], block_max);
      if (new_max == kNegInf) {  // nothing visible yet for this row: it adds nothing
        std::fill(s, s + kn, 0.0f);
        continue;
      }
      const float correction = std::exp(acc.max[r] - new_max);  // exp(-inf) = 0 on the first
      float block_sum = 0;
      for (int64_t j = 0; j < kn; ++j) {
        s[j] = j < visible ? std::exp(s[j] - new_max) : 0.0f;
        block_sum += s[j];
      }
      acc.sum[r] = acc.sum[r] * correction + block_sum;
      acc.max[r] = new_max;
      if (correction != 1.0f)
        for (int64_t c = 0; c < L.dv; ++c) acc.out[r * L.dv + c] *= correction;
    }
    // out += p · v
    for (int64_t hh = 0; hh < L.group; ++hh) {
      const float* p = acc.scores + hh * it.q_count * kKeyBlock;
      float* o = acc.out + hh * it.q_count * L.dv;
      if (use_gemm) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(it.q_count), int(L.dv), int(kn),
                    1.0f, p, int(kKeyBlock), vb, int(L.v_stride), 1.0f, o, int(L.dv));
      } else {
        for (int64_t i = 0; i < it.q_count; ++i)
          for (int64_t j = 0; j < kn; ++j)
            if (p[i * kKeyBlock + j] != 0.0f)
              kern.axpy_f32(o + i * L.dv, p[i * kKeyBlock + j], vb + j * L.v_stride, L.dv);
      }
    }
  }
}

// out rows of an item that was not split: O / l (a row that saw no key gets zeros, as
// flash-attention returns for an empty causal window).
void write_output(const Layout& L, const Item& it, const Accumulator& acc, float* out) {
  for (int64_t hh = 0; hh < L.group; ++hh)
    for (int64_t i = 0; i < it.q_count; ++i) {
      const int64_t r = hh * it.q_count + i;
      float* dst =
          out + (it.seg_q0 + it.q_begin + i) * L.hq * L.dv + (it.kv_head * L.group + hh) * L.dv;
      const float inv = acc.sum[r] > 0 ? 1.0f / acc.sum[r] : 0.0f;
      for (int64_t c = 0; c < L.dv; ++c) dst[c] = acc.out[r * L.dv + c] * inv;
    }
}

std::vector<int32_t> read_offsets(const Tensor& cu, int segments, int64_t total, const char* name) {
  check_cpu(cu, "attention", name);
  check_dtype(cu, "attention", name, {DType::I32});
  if (cu.numel() < segments + 1)
    fail_internal("attention: ", name, " has ", cu.numel(), " entries for ", segments, " segments");
  const int32_t* p = cu.data<int32_t>();
  for (int s = 0; s < segments; ++s)
    if (p[s] < 0 || p[s] > p[s + 1] || p[s + 1] > total)
      fail_internal("attention: ", name, " is not increasing within [0, ", total, "] at segment ",
                    s);
  return std::vector<int32_t>(p, p + segments + 1);
}

// The block table of paged segments, checked: every block a segment's keys use lies within the
// `rows` rows of k and v.
const int32_t* paged_block_table(const AttentionSegments& seg, const std::vector<int32_t>& cu_k,
                                 int64_t rows) {
  const Tensor& table = seg.block_table;
  check_cpu(table, "attention", "block_table");
  check_dtype(table, "attention", "block_table", {DType::I32});
  if (seg.block_size <= 0 || table.rank() != 2 || table.dim(0) < seg.segments)
    fail_internal("attention: block_table ", table.shape().str(), " with block size ",
                  seg.block_size, " for ", seg.segments, " segments");
  const int64_t blocks = rows / seg.block_size, stride = table.dim(1);
  const int32_t* p = table.data<int32_t>();
  for (int s = 0; s < seg.segments; ++s) {
    const int64_t used =
        (int64_t(cu_k[size_t(s) + 1]) - cu_k[size_t(s)] + seg.block_size - 1) / seg.block_size;
    if (used > stride)
      fail_internal("attention: segment ", s, " needs ", used, " blocks; its table holds ", stride);
    for (int64_t b = 0; b < used; ++b)
      if (p[s * stride + b] < 0 || p[s * stride + b] >= blocks)
        fail_internal("attention: block ", p[s * stride + b], " of segment ", s, " is outside the ",
                      blocks, " blocks of the cache");
  }
  return p;
}

}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v,
                           const AttentionSegments& seg, Tensor& out) {
  for (auto [t, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}}) {
    check_cpu(*t, "attention", name);
    check_dtype(*t, "attention", name, {DType::F32});
    if (t->rank() != 3)
      fail_internal("attention: ", name, " ", t->shape().str(), " must be [tokens, heads, dim]");
  }
  const int64_t hq = q.dim(1), hkv = k.dim(1), d = q.dim(2), dv = v.dim(2);
  if (hkv == 0 || hq % hkv != 0)
    fail_internal("attention: ", hq, " query heads are not a multiple of ", hkv, " kv heads");
  if (k.dim(2) != d || v.dim(1) != hkv || v.dim(0) != k.dim(0))
    fail_internal("attention: k ", k.shape().str(), " and v ", v.shape().str(), " do not match q ",
                  q.shape().str());
  if (out.dim(0) != q.dim(0) || out.dim(1) != hq || out.dim(2) != dv)
    fail_internal("attention: out ", out.shape().str(), " must be [", q.dim(0), ", ", hq, ", ", dv,
                  "]");
  const bool paged = seg.block_table.defined();
  const std::vector<int32_t> cu_q = read_offsets(seg.cu_q, seg.segments, q.dim(0), "cu_q");
  const std::vector<int32_t> cu_k = read_offsets(
      seg.cu_k, seg.segments, paged ? std::numeric_limits<int32_t>::max() : k.dim(0), "cu_k");
  const int32_t* block_table = paged ? paged_block_table(seg, cu_k, k.dim(0)) : nullptr;
  const int64_t table_stride = paged ? seg.block_table.dim(1) : 0;

  const Layout L{hq,
                 hkv,
                 hq / hkv,
                 d,
                 dv,
                 hq * d,
                 hkv * d,
                 hkv * dv,
                 seg.scale,
                 seg.causal,
                 paged ? int64_t(seg.block_size) : 0};
  const int64_t q_block = std::max<int64_t>(1, kRowsPerItem / L.group);
  const int64_t rows_max = L.group * q_block;

  // Items without key splits; then as many splits as fill the threads on short query counts.
  std::vector<Item> items;
  int64_t longest_keys = 0;
  for (int s = 0; s < seg.segments; ++s) {
    const int64_t nq = cu_q[s + 1] - cu_q[s], nk = cu_k[s + 1] - cu_k[s];
    longest_keys = std::max(longest_keys, nk);
    for (int64_t g = 0; g < hkv; ++g)
      for (int64_t b = 0; b < nq; b += q_block) {
        const int64_t count = std::min(q_block, nq - b);
        // causal: the block's last query sees keys up to (b + count - 1) + nk - nq
        const int64_t k_end = seg.causal ? std::clamp<int64_t>(b + count + nk - nq, 0, nk) : nk;
        items.push_back({cu_q[s], cu_k[s], paged ? block_table + s * table_stride : nullptr, nq, nk,
                         g, b, count, 0, k_end});
      }
  }
  ThreadPool& pool = ThreadPool::global();
  const int threads = pool.size();
  const int64_t splits =
      int64_t(items.size()) >= 2 * threads
          ? 1
          : std::clamp<int64_t>(2 * threads / std::max<size_t>(1, items.size()), 1,
                                std::max<int64_t>(1, longest_keys / kMinKeysPerSplit));
  const size_t unsplit_items = items.size();
  if (splits > 1) {
    std::vector<Item> split;
    for (const Item& it : items)
      for (int64_t c = 0; c < splits; ++c) {
        Item part = it;
        part.k_begin = it.k_end * c / splits;
        part.k_end = it.k_end * (c + 1) / splits;
        split.push_back(part);
      }
    items.swap(split);
  }

  // Scratch: one accumulator per thread, and for split items their partial (m, l, O).
  const size_t per_thread = accumulator_floats(rows_max, dv);
  const size_t partial = size_t(rows_max) * (dv + 2);
  const size_t partials = splits > 1 ? items.size() * partial : 0;
  float* scratch = thread_scratch(1, threads * per_thread + partials);
  float* partial_base = scratch + threads * per_thread;
  const float *qs = q.data<float>(), *ks = k.data<float>(), *vs = v.data<float>();
  float* os = out.data<float>();
  const int64_t n_items = int64_t(items.size());

  pool.parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    for (int64_t t = t_begin; t < t_end; ++t) {
      Accumulator acc = carve(scratch + t * per_thread, rows_max, dv);
      // Interleaved, so that the costly late blocks of causal segments spread over threads.
      for (int64_t x = t; x < n_items; x += threads) {
        const Item& it = items[x];
        attend_item(qs, ks, vs, L, it, acc);
        if (splits == 1) {
          write_output(L, it, acc, os);
          continue;
        }
        const int64_t rows = L.group * it.q_count;
        float* p = partial_base + x * partial;
        std::copy(acc.max, acc.max + rows, p);
        std::copy(acc.sum, acc.sum + rows, p + rows);
        std::copy(acc.out, acc.out + rows * dv, p + 2 * rows);
      }
    }
  });
  if (splits == 1) return;

  // Merge the splits of each item: O = Σ O_c e^(m_c - M) / Σ l_c e^(m_c - M), M = max m_c.
  pool.parallel_for(int64_t(unsplit_items), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> merged(size_t(rows_max) * (dv + 2));
    for (int64_t u = begin; u < end; ++u) {
      const Item& it = items[u * splits];
      const int64_t rows = L.group * it.q_count;
      Accumulator acc{nullptr, merged.data(), merged.data() + rows * dv,
                      merged.data() + rows * (dv + 1)};
      for (int64_t r = 0; r < rows; ++r) {
        float m = kNegInf;
        for (int64_t c = 0; c < splits; ++c)
          m = std::max(m, partial_base[(u * splits + c) * partial + r]);
        float l = 0;
        std::fill(acc.out + r * dv, acc.out + (r + 1) * dv, 0.0f);
        if (m != kNegInf)
          for (int64_t c = 0; c < splits; ++c) {
            const float* p = partial_base + (u * splits + c) * partial;
            if (p[r] == kNegInf) continue;
            const float w = std::exp(p[r] - m);
            l += p[rows + r] * w;
            for (int64_t e = 0; e < dv; ++e) acc.out[r * dv + e] += p[2 * rows + r * dv + e] * w;
          }
        acc.max[r] = m;
        acc.sum[r] = l;
      }
      write_output(L, it, acc, os);
    }
  });
}

}  // namespace qwenvl
