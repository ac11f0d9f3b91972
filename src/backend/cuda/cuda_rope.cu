// Attention's rotary step on a fused q/k/v projection, "rotate_half" layout: pair (x[j],
// x[j + d/2]) turns by positions[pos_row[j], token] * inv_freq[j], rounded as RopeSpec asks
// (cuda_rope.cuh).
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
// of its heads), then each thread takes `kGroup` neighbouring frequencies of one head (16-byte
// loads and stores when `vector`: half % 8 == 0 and 16-byte aligned rows; else one frequency),
// groups fastest, so neighbouring threads touch neighbouring elements.
template <typename T, int kGroup>
__global__ void __launch_bounds__(kThreads) rope_qkv_kernel(RopeQkvArgs a) {
  __shared__ float cos_s[kMaxHalf], sin_s[kMaxHalf];
  chain_start();
  const int half = a.head_dim / 2, groups = half / kGroup;
  const int heads = a.heads_q + 2 * a.heads_kv;
  const int64_t token = blockIdx.x;
  const int64_t row = a.slots ? a.slots[token] : token;
  if (row < 0 || row >= a.kv_rows) return;  // the host checked slots; never write outside
  for (int j = threadIdx.x; j < half; j += kThreads)
    sincosf(rope_angle(a, token, j), &sin_s[j], &cos_s[j]);
  __syncthreads();
  const T* src_row = static_cast<const T*>(a.qkv) + token * heads * int64_t(a.head_dim);
  for (int i = threadIdx.x; i < heads * groups; i += kThreads) {
    const int head = i / groups, j0 = (i % groups) * kGroup;
    const T* src = src_row + head * a.head_dim + j0;
    bool rotate = false;
    T* dst = qkv_destination<T>(a, token, row, head, rotate) + j0;
    if constexpr (kGroup == 1) {
      if (rotate) {
        rotate_pair<T>(a, to_float(src[0]), to_float(src[half]), cos_s[j0], sin_s[j0], dst[0],
                       dst[half]);
      } else {
        dst[0] = src[0];
        dst[half] = src[half];
      }
    } else {
      Vec<T> x1 = load16(src), x2 = load16(src + half);
      if (rotate) {
        Vec<T> o1, o2;
#pragma unroll
        for (int p = 0; p < kGroup; ++p)
          rotate_pair<T>(a, to_float(x1.v[p]), to_float(x2.v[p]), cos_s[j0 + p], sin_s[j0 + p],
                         o1.v[p], o2.v[p]);
        x1 = o1, x2 = o2;
      }
      store16(dst, x1);
      store16(dst + half, x2);
    }
  }
}

}  // namespace

void rope_qkv(const RopeQkvArgs& args, DType dtype, cudaStream_t stream) {
  if (args.tokens == 0) return;
  if (args.head_dim / 2 > kMaxHalf)
    fail("CUDA rope_qkv supports head_dim up to ", 2 * kMaxHalf, ", not ", args.head_dim);
  const bool vector = args.head_dim % 16 == 0 && aligned16(args.qkv) && aligned16(args.q) &&
                      aligned16(args.k) && aligned16(args.v);
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    if (vector)
      launch_chained(rope_qkv_kernel<T, Vec<T>::N>, unsigned(args.tokens), kThreads, 0, stream,
                     args);
    else
      launch_chained(rope_qkv_kernel<T, 1>, unsigned(args.tokens), kThreads, 0, stream, args);
  });
}

}  // namespace qwenvl::cuda
