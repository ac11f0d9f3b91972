// Sampling on the GPU with exactly the CPU backend's rule (cpu_sample.cpp, transformers'
// processor order): repetition penalty on each distinct history id, greedy argmax (lowest id on
// ties) at temperature 0, else temperature, top-k (ties with the k-th kept), top-p (ascending
// walk, drop while the cumulative probability <= 1 - top_p, keep the largest), min-p, and the
// caller's uniform u picks the first token, in descending probability with equal ones by lower
// id, whose cumulative probability exceeds u · total.
//
// The scores are sorted once (cub's stable radix sort: equal scores stay in increasing id, the
// CPU's ascending order), then one block finds the cut points with parallel sums. Sums run in
// double as on the CPU but in another order, so a decision can differ only when a cumulative
// probability lies within double rounding of its bound. Only the chosen id is written.
#include <cfloat>
#include <climits>
#include <cub/cub.cuh>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace qwenvl::cuda {

namespace {

constexpr int kPickThreads = 1024;
constexpr int kArgmaxThreads = 256;
constexpr int kArgmaxPerThread = 4;  // one 16-byte load each
constexpr int kArgmaxMaxBlocks = 1024;
constexpr int kArgmaxRowThreads = 512;

struct Layout {
  unsigned* ticket;    // the greedy argmax's count of finished blocks, zero between calls
  float* best_values;  // [kArgmaxMaxBlocks]: each block's maximum and its id
  int32_t* best_ids;
  uint8_t* marks;  // [vocab], zero between calls
  float* keys_in;
  int32_t* ids_in;
  float* keys;  // sorted ascending
  int32_t* ids;
  void* sort_temp;
  size_t sort_temp_bytes;
};

size_t align256(size_t n) { return (n + 255) / 256 * 256; }

size_t sort_temp_bytes(int vocab) {
  size_t bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), vocab));
  return bytes;
}

Layout layout_in(void* scratch, int vocab) {
  char* p = static_cast<char*>(scratch);
  Layout l;
  l.ticket = reinterpret_cast<unsigned*>(p);
  p += 256;
  l.best_values = reinterpret_cast<float*>(p);
  p += align256(kArgmaxMaxBlocks * 4);
  l.best_ids = reinterpret_cast<int32_t*>(p);
  p += align256(kArgmaxMaxBlocks * 4);
  l.marks = reinterpret_cast<uint8_t*>(p);
  p += align256(vocab);
  l.keys_in = reinterpret_cast<float*>(p);
  p += align256(size_t(vocab) * 4);
  l.ids_in = reinterpret_cast<int32_t*>(p);
  p += align256(size_t(vocab) * 4);
  l.keys = reinterpret_cast<float*>(p);
  p += align256(size_t(vocab) * 4);
  l.ids = reinterpret_cast<int32_t*>(p);
  p += align256(size_t(vocab) * 4);
  l.sort_temp = p;
  l.sort_temp_bytes = sort_temp_bytes(vocab);
  return l;
}

__global__ void mark_history_kernel(const int32_t* history, int n, int vocab, uint8_t* marks) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    int32_t id = history[i];
    if (id >= 0 && id < vocab) marks[id] = 1;
  }
}

// Each marked id is penalized once however often it occurs, and its mark is cleared.
__global__ void penalize_kernel(float* logits, int vocab, uint8_t* marks, float penalty) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < vocab; i += gridDim.x * blockDim.x) {
    if (!marks[i]) continue;
    marks[i] = 0;
    float s = logits[i];
    logits[i] = s < 0 ? s * penalty : s / penalty;
  }
}

// The larger of two candidates, the lower id among equal values; NaN never wins ("none yet" is
// id == vocab, larger than every real id).
__device__ __forceinline__ void keep_best(float& value, int& index, float v2, int i2) {
  if (v2 > value || (v2 == value && i2 < index)) value = v2, index = i2;
}

__device__ __forceinline__ void block_best(float& value, int& index, float* values, int* indices) {
  for (int o = 16; o > 0; o >>= 1)
    keep_best(value, index, __shfl_xor_sync(0xffffffffu, value, o),
              __shfl_xor_sync(0xffffffffu, index, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) values[warp] = value, indices[warp] = index;
  __syncthreads();
  const int warps = blockDim.x / 32;
  value = lane < warps ? values[lane] : -INFINITY;
  index = lane < warps ? indices[lane] : INT_MAX;
  for (int o = 16; o > 0; o >>= 1)
    keep_best(value, index, __shfl_xor_sync(0xffffffffu, value, o),
              __shfl_xor_sync(0xffffffffu, index, o));
}

// Greedy argmax over the whole GPU: each block finds the best of its kArgmaxThreads x 4 logits
// (one 16-byte load per thread) and the last block to finish picks among the blocks' bests. One
// block reading all 150k logits took several L2 round trips per thread.
__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_kernel(const float* logits, int vocab, Layout l, int32_t* next_token) {
  __shared__ float values[32];
  __shared__ int indices[32];
  __shared__ bool last;
  float value = -INFINITY;
  int index = vocab;  // "none yet": larger than every real index
  auto consider = [&](float s, int i) {
    if (s > value || (index == vocab && s == s)) value = s, index = i;
  };
  const int first = (blockIdx.x * kArgmaxThreads + threadIdx.x) * kArgmaxPerThread;
  if (first + kArgmaxPerThread <= vocab && reinterpret_cast<uintptr_t>(logits) % 16 == 0) {
    const float4 v = *reinterpret_cast<const float4*>(logits + first);
    consider(v.x, first), consider(v.y, first + 1), consider(v.z, first + 2);
    consider(v.w, first + 3);
  } else {
    for (int i = first; i < min(vocab, first + kArgmaxPerThread); ++i) consider(logits[i], i);
  }
  block_best(value, index, values, indices);
  if (threadIdx.x == 0) {
    l.best_values[blockIdx.x] = value;
    l.best_ids[blockIdx.x] = index;
    __threadfence();
    last = atomicAdd(l.ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  value = -INFINITY, index = vocab;
  for (int b = threadIdx.x; b < gridDim.x; b += kArgmaxThreads) {
    const float v2 = __ldcg(l.best_values + b);
    const int i2 = __ldcg(l.best_ids + b);
    if (i2 < vocab) keep_best(value, index, v2, i2);
  }
  __syncthreads();  // values / indices are reused
  block_best(value, index, values, indices);
  if (threadIdx.x == 0) {
    *next_token = index < vocab ? index : 0;  // all NaN: id 0, as the CPU's loop
    *l.ticket = 0;
  }
}

// Temperature in place (as the CPU writes it back); NaN and -inf become -inf sort keys, -0 becomes
// +0 so that the radix order agrees with float comparison.
__global__ void prepare_keys_kernel(float* logits, int vocab, float temperature, float* keys,
                                    int32_t* ids) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < vocab; i += gridDim.x * blockDim.x) {
    float s = logits[i] / temperature;
    logits[i] = s;
    keys[i] = s > -INFINITY ? s + 0.0f : -INFINITY;
    ids[i] = i;
  }
}

template <typename V>
__device__ V block_sum_any(V v, V* shared) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  V total = 0;
  for (int w = 0; w < int(blockDim.x / 32); ++w) total += shared[w];
  return total;
}

// First index in [lo, hi) whose key is >= value (keys ascending).
__device__ int lower_bound(const float* keys, int lo, int hi, float value) {
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (keys[mid] < value)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

__device__ int upper_bound(const float* keys, int lo, int hi, float value) {
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (keys[mid] <= value)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

__global__ void __launch_bounds__(kPickThreads)
    pick_kernel(SampleArgs args, const float* keys, const int32_t* ids) {
  __shared__ double shared_d[32];
  __shared__ int shared_i[32];
  const int vocab = args.vocab;
  const int first = lower_bound(keys, 0, vocab, -FLT_MAX);  // skip the -inf keys
  if (first == vocab) {
    if (threadIdx.x == 0) *args.next_token = -1;  // nothing finite: the CPU raises an error
    return;
  }
  const float top = keys[vocab - 1];
  int start = first;
  if (args.top_k > 0 && args.top_k < vocab - first)
    start = lower_bound(keys, first, vocab, keys[vocab - args.top_k]);

  // Thread t owns a contiguous run of the candidates [start, vocab).
  auto chunk = [&](int begin, int& lo, int& hi) {
    int n = vocab - begin, per = (n + blockDim.x - 1) / blockDim.x;
    lo = min(vocab, begin + int(threadIdx.x) * per);
    hi = min(vocab, lo + per);
  };
  int lo, hi;

  if (args.top_p < 1.0f) {
    chunk(start, lo, hi);
    double part = 0;
    for (int i = lo; i < hi; ++i) part += double(expf(keys[i] - top));
    const double total = block_sum_any(part, shared_d);
    // Cumulative sums of float(w / total) in ascending order: chunk sums, then a prefix.
    double mine = 0;
    for (int i = lo; i < hi; ++i) mine += double(float(double(expf(keys[i] - top)) / total));
    __syncthreads();
    __shared__ double prefix[kPickThreads];
    prefix[threadIdx.x] = mine;
    __syncthreads();
    double before = 0;
    for (int t = 0; t < int(threadIdx.x); ++t) before += prefix[t];
    const float limit = float(1.0 - double(args.top_p));
    int dropped = 0;
    double cumulative = before;
    for (int i = lo; i < hi && i < vocab - 1; ++i) {
      cumulative += double(float(double(expf(keys[i] - top)) / total));
      if (float(cumulative) <= limit) ++dropped;
    }
    start += block_sum_any(dropped, shared_i);
  }

  if (args.min_p > 0.0f) {
    chunk(start, lo, hi);
    double part = 0;
    for (int i = lo; i < hi; ++i) part += double(expf(keys[i] - top));
    const double total = block_sum_any(part, shared_d);
    const float threshold = args.min_p * float(1.0 / total);  // the top token's weight is 1
    int dropped = 0;
    for (int i = lo; i < hi && i < vocab - 1; ++i)
      if (float(double(expf(keys[i] - top)) / total) < threshold) ++dropped;
    start += block_sum_any(dropped, shared_i);
  }

  // Descending walk: suffix sums from the top; count the candidates whose suffix sum exceeds
  // u · total. They form [start, crossing], so the count locates the crossing.
  chunk(start, lo, hi);
  double part = 0;
  for (int i = lo; i < hi; ++i) part += double(expf(keys[i] - top));
  const double total = block_sum_any(part, shared_d);
  const double target = double(args.uniform) * total;
  __shared__ double suffix[kPickThreads];
  __syncthreads();
  suffix[threadIdx.x] = part;
  __syncthreads();
  double after = 0;
  for (int t = int(threadIdx.x) + 1; t < int(blockDim.x); ++t) after += suffix[t];
  int above = 0;
  double cumulative = after;
  for (int i = hi - 1; i >= lo; --i) {
    cumulative += double(expf(keys[i] - top));
    if (cumulative > target) ++above;
  }
  above = block_sum_any(above, shared_i);
  if (threadIdx.x != 0) return;
  int chosen;
  if (above == 0) {
    // Rounding left the target unreached: the least likely kept token, the highest id among
    // the smallest kept scores (the last in the CPU's order).
    chosen = ids[upper_bound(keys, start, vocab, keys[start]) - 1];
  } else {
    // Equal scores: the CPU walks them by increasing id, this walk by decreasing; mirror the
    // position inside the run of equal scores.
    int crossing = start + above - 1;
    int run_lo = lower_bound(keys, start, vocab, keys[crossing]);
    int run_hi = upper_bound(keys, start, vocab, keys[crossing]) - 1;
    chosen = ids[run_lo + (run_hi - crossing)];
  }
  *args.next_token = chosen;
}

// Row blockIdx.x's distinct ids, each penalized once.
__global__ void penalize_rows_kernel(float* logits, int vocab, const int32_t* ids,
                                     const int32_t* offsets, const float* penalties) {
  const int row = blockIdx.x;
  const float penalty = penalties[row];
  float* scores = logits + int64_t(row) * vocab;
  for (int i = offsets[row] + threadIdx.x; i < offsets[row + 1]; i += blockDim.x) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab) continue;
    const float s = scores[id];
    scores[id] = s < 0 ? s * penalty : s / penalty;
  }
}

// One block per row, with argmax_kernel's rule (NaN never wins, the lowest id among equal
// maxima, id 0 when every score is NaN).
__global__ void __launch_bounds__(kArgmaxRowThreads)
    argmax_rows_kernel(const float* logits, int vocab, int32_t* next_tokens) {
  __shared__ float values[32];
  __shared__ int indices[32];
  const float* scores = logits + int64_t(blockIdx.x) * vocab;
  float value = -INFINITY;
  int index = vocab;
  auto consider = [&](float s, int i) {
    if (s > value || (index == vocab && s == s)) value = s, index = i;
  };
  if (vocab % 4 == 0 && reinterpret_cast<uintptr_t>(scores) % 16 == 0) {
    for (int i = threadIdx.x * 4; i < vocab; i += kArgmaxRowThreads * 4) {
      const float4 v = *reinterpret_cast<const float4*>(scores + i);
      consider(v.x, i), consider(v.y, i + 1), consider(v.z, i + 2), consider(v.w, i + 3);
    }
  } else {
    for (int i = threadIdx.x; i < vocab; i += kArgmaxRowThreads) consider(scores[i], i);
  }
  block_best(value, index, values, indices);
  if (threadIdx.x == 0) next_tokens[blockIdx.x] = index < vocab ? index : 0;
}

}  // namespace

size_t sample_scratch_bytes(int vocab) {
  return 256 + 2 * align256(kArgmaxMaxBlocks * 4) + align256(vocab) +
         4 * align256(size_t(vocab) * 4) + sort_temp_bytes(vocab);
}

void sample(const SampleArgs& args, void* scratch, cudaStream_t stream) {
  Layout l = layout_in(scratch, args.vocab);
  const int blocks = int(std::min<int64_t>(blocks_for(args.vocab, 256), 1024));
  if (args.repetition_penalty != 1.0f && args.history_len > 0) {
    mark_history_kernel<<<unsigned(std::min(blocks_for(args.history_len, 256), 1024u)), 256, 0,
                          stream>>>(args.history, args.history_len, args.vocab, l.marks);
    CUDA_CHECK_LAUNCH();
    penalize_kernel<<<blocks, 256, 0, stream>>>(args.logits, args.vocab, l.marks,
                                                args.repetition_penalty);
    CUDA_CHECK_LAUNCH();
  }
  if (args.temperature == 0.0f) {
    const unsigned blocks = blocks_for(args.vocab, kArgmaxThreads * kArgmaxPerThread);
    if (blocks > unsigned(kArgmaxMaxBlocks))
      fail("sampling: a vocabulary of ", args.vocab, " is more than greedy decoding takes");
    argmax_kernel<<<blocks, kArgmaxThreads, 0, stream>>>(args.logits, args.vocab, l,
                                                         args.next_token);
    CUDA_CHECK_LAUNCH();
    return;
  }
  prepare_keys_kernel<<<blocks, 256, 0, stream>>>(args.logits, args.vocab, args.temperature,
                                                  l.keys_in, l.ids_in);
  CUDA_CHECK_LAUNCH();
  size_t temp_bytes = l.sort_temp_bytes;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(l.sort_temp, temp_bytes, l.keys_in, l.keys, l.ids_in,
                                             l.ids, args.vocab, 0, 32, stream));
  pick_kernel<<<1, kPickThreads, 0, stream>>>(args, l.keys, l.ids);
  CUDA_CHECK_LAUNCH();
}

void penalize_repeats(float* logits, int rows, int vocab, const int32_t* ids,
                      const int32_t* offsets, const float* penalties, cudaStream_t stream) {
  if (rows == 0) return;
  penalize_rows_kernel<<<unsigned(rows), 256, 0, stream>>>(logits, vocab, ids, offsets, penalties);
  CUDA_CHECK_LAUNCH();
}

void argmax_rows(const float* logits, int rows, int vocab, int32_t* next_tokens,
                 cudaStream_t stream) {
  if (rows == 0) return;
  argmax_rows_kernel<<<unsigned(rows), kArgmaxRowThreads, 0, stream>>>(logits, vocab, next_tokens);
  CUDA_CHECK_LAUNCH();
}

}  // namespace qwenvl::cuda
