// Attention's rotary step on a fused q/k/v projection, "rotate_half" layout: pair (x[j],
// x[j + d/2]) turns by positions[pos_row[j], token] * inv_freq[j], in fp32 with one rounding at
// the end, as transformers' apply_rotary_pos_emb_vision does (cuda_rope.cuh).
// The same pass moves the rotated keys and the values to their cache rows, so a decoder layer
// spends one launch between its q/k/v product and its attention.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_rope.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxHalf = 256;  // head_dim <= 512

// One block per token: the token's angles are computed once (head_dim/2 sincosf, shared by all
// of its heads), then the block's threads walk (head, j) pairs with j fastest, so neighbouring
// threads touch neighbouring elements.
template <typename T>
__global__ void __launch_bounds__(kThreads) rope_qkv_kernel(RopeQkvArgs a) {
  __shared__ float cos_s[kMaxHalf], sin_s[kMaxHalf];
  chain_start();
  const int half = a.head_dim / 2;
  const int heads = a.heads_q + 2 * a.heads_kv;
  const int64_t token = blockIdx.x;
  const int64_t row = a.slots ? a.slots[token] : token;
  if (row < 0 || row >= a.kv_rows) return;  // the host checked slots; never write outside
  for (int j = threadIdx.x; j < half; j += kThreads)
    sincosf(rope_angle(a, token, j), &sin_s[j], &cos_s[j]);
  __syncthreads();
  const T* src_row = static_cast<const T*>(a.qkv) + token * heads * int64_t(a.head_dim);
  for (int i = threadIdx.x; i < heads * half; i += kThreads) {
    const int head = i / half, j = i % half;
    const T* src = src_row + head * a.head_dim;
    store_qkv_pair<T>(a, token, row, head, j, to_float(src[j]), to_float(src[j + half]), cos_s[j],
                      sin_s[j]);
  }
}

}  // namespace

void rope_qkv(const RopeQkvArgs& args, DType dtype, cudaStream_t stream) {
  if (args.tokens == 0) return;
  if (args.head_dim / 2 > kMaxHalf)
    fail("CUDA rope_qkv supports head_dim up to ", 2 * kMaxHalf, ", not ", args.head_dim);
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    launch_chained(rope_qkv_kernel<T>, unsigned(args.tokens), kThreads, 0, stream, args);
  });
}

}  // namespace qwenvl::cuda
