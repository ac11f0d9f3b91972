// Row gathers and scatters: embedding lookup (from a weight of another dtype), window
// reordering, image embeddings into the prompt, new keys and values into the KV cache; and
// increment, which advances a decode step's index tensors.
// One block per row; an index outside the table leaves the row untouched (gather writes NaN so
// the mistake shows) instead of reading or writing out of bounds.
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 256;

template <typename S, typename O>
__global__ void gather_kernel(const S* src, int64_t src_rows, const int32_t* indices,
                              int64_t row_elems, O* out) {
  int64_t index = indices[blockIdx.x];
  O* dst = out + blockIdx.x * row_elems;
  if (index < 0 || index >= src_rows) {
    for (int64_t c = threadIdx.x; c < row_elems; c += blockDim.x) dst[c] = from_float<O>(nanf(""));
    return;
  }
  const S* row = src + index * row_elems;
  for (int64_t c = threadIdx.x; c < row_elems; c += blockDim.x)
    dst[c] = from_float<O>(to_float(row[c]));
}

template <typename S, typename O>
__global__ void scatter_kernel(const S* src, const int32_t* indices, int64_t row_elems, O* dst,
                               int64_t dst_rows) {
  int64_t index = indices[blockIdx.x];
  if (index < 0 || index >= dst_rows) return;
  const S* row = src + blockIdx.x * row_elems;
  O* to = dst + index * row_elems;
  for (int64_t c = threadIdx.x; c < row_elems; c += blockDim.x)
    to[c] = from_float<O>(to_float(row[c]));
}

// Same dtype: copy bytes in 16-byte words when everything is aligned, else 4/2/1-byte words.
template <typename Word>
__global__ void gather_copy_kernel(const Word* src, int64_t src_rows, const int32_t* indices,
                                   int64_t row_words, Word* out) {
  int64_t index = indices[blockIdx.x];
  if (index < 0 || index >= src_rows) return;
  const Word* row = src + index * row_words;
  Word* dst = out + blockIdx.x * row_words;
  for (int64_t c = threadIdx.x; c < row_words; c += blockDim.x) dst[c] = row[c];
}

template <typename Word>
__global__ void scatter_copy_kernel(const Word* src, const int32_t* indices, int64_t row_words,
                                    Word* dst, int64_t dst_rows) {
  int64_t index = indices[blockIdx.x];
  if (index < 0 || index >= dst_rows) return;
  const Word* row = src + blockIdx.x * row_words;
  Word* to = dst + index * row_words;
  for (int64_t c = threadIdx.x; c < row_words; c += blockDim.x) to[c] = row[c];
}

// A chained launch: it waits for the step's last kernel like any consumer, without a launch gap.
__global__ void increment_kernel(int32_t* values, int64_t n) {
  chain_start();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ++values[i];
}

template <typename F>
void with_word(size_t row_bytes, const void* a, const void* b, F&& f) {
  auto fits = [&](size_t w) {
    return row_bytes % w == 0 && reinterpret_cast<uintptr_t>(a) % w == 0 &&
           reinterpret_cast<uintptr_t>(b) % w == 0;
  };
  if (fits(16))
    f(uint4{}, 16);
  else if (fits(4))
    f(uint32_t{}, 4);
  else if (fits(2))
    f(uint16_t{}, 2);
  else
    f(uint8_t{}, 1);
}

}  // namespace

void gather_rows(const void* src, DType src_dtype, int64_t src_rows, const int32_t* indices,
                 int64_t count, int64_t row_elems, void* out, DType out_dtype,
                 cudaStream_t stream) {
  if (count == 0 || row_elems == 0) return;
  if (src_dtype == out_dtype) {
    size_t row_bytes = size_t(row_elems) * dtype_size(src_dtype);
    with_word(row_bytes, src, out, [&](auto word, size_t size) {
      using Word = decltype(word);
      gather_copy_kernel<Word><<<unsigned(count), kThreads, 0, stream>>>(
          static_cast<const Word*>(src), src_rows, indices, int64_t(row_bytes / size),
          static_cast<Word*>(out));
    });
    CUDA_CHECK_LAUNCH();
    return;
  }
  with_float(src_dtype, [&](auto s) {
    with_float(out_dtype, [&](auto o) {
      using S = decltype(s);
      using O = decltype(o);
      gather_kernel<S, O><<<unsigned(count), kThreads, 0, stream>>>(
          static_cast<const S*>(src), src_rows, indices, row_elems, static_cast<O*>(out));
    });
  });
  CUDA_CHECK_LAUNCH();
}

void scatter_rows(const void* src, DType src_dtype, const int32_t* indices, int64_t count,
                  int64_t row_elems, void* dst, DType dst_dtype, int64_t dst_rows,
                  cudaStream_t stream) {
  if (count == 0 || row_elems == 0) return;
  if (src_dtype == dst_dtype) {
    size_t row_bytes = size_t(row_elems) * dtype_size(src_dtype);
    with_word(row_bytes, src, dst, [&](auto word, size_t size) {
      using Word = decltype(word);
      scatter_copy_kernel<Word><<<unsigned(count), kThreads, 0, stream>>>(
          static_cast<const Word*>(src), indices, int64_t(row_bytes / size),
          static_cast<Word*>(dst), dst_rows);
    });
    CUDA_CHECK_LAUNCH();
    return;
  }
  with_float(src_dtype, [&](auto s) {
    with_float(dst_dtype, [&](auto o) {
      using S = decltype(s);
      using O = decltype(o);
      scatter_kernel<S, O><<<unsigned(count), kThreads, 0, stream>>>(
          static_cast<const S*>(src), indices, row_elems, static_cast<O*>(dst), dst_rows);
    });
  });
  CUDA_CHECK_LAUNCH();
}

void increment(int32_t* values, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch_chained(increment_kernel, dim3(1), dim3(32), 0, stream, values, n);
}

}  // namespace qwenvl::cuda
