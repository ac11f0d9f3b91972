// Attention's rotary step on a fused q/k/v projection, "rotate_half" layout: pair (x[j],
// x[j + d/2]) turns by positions[pos_row[j], token] * inv_freq[j]. The angle and the rotation
// are computed in fp32 (accurate sincosf, not the fast intrinsic: angles reach tens of thousands
// of radians), with one rounding at the end, as transformers' apply_rotary_pos_emb_vision does.
// The same pass moves the rotated keys and the values to their cache rows, so a decoder layer
// spends one launch between its q/k/v product and its attention.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per (token, head, j < d/2) over the hq + 2·hkv heads of each token.
template <typename T>
__global__ void rope_qkv_kernel(RopeQkvArgs a) {
  chain_start();
  const int half = a.head_dim / 2;
  const int heads = a.heads_q + 2 * a.heads_kv;
  const int64_t total = a.tokens * heads * half;
  const T* qkv = static_cast<const T*>(a.qkv);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int j = int(i % half);
    const int64_t token_head = i / half;
    const int head = int(token_head % heads);
    const int64_t token = token_head / heads;
    const T* src = qkv + token_head * a.head_dim;
    const int64_t row = a.slots ? a.slots[token] : token;
    if (row < 0 || row >= a.kv_rows) continue;  // the host checked slots; never write outside
    if (head >= a.heads_q + a.heads_kv) {  // a value head: moved as it is
      T* dst = static_cast<T*>(a.v) +
               (row * a.heads_kv + (head - a.heads_q - a.heads_kv)) * int64_t(a.head_dim);
      dst[j] = src[j];
      dst[j + half] = src[j + half];
      continue;
    }
    const float angle = float(a.positions[a.pos_row[j] * a.tokens + token]) * a.inv_freq[j];
    float s, c;
    sincosf(angle, &s, &c);
    const float x1 = to_float(src[j]), x2 = to_float(src[j + half]);
    T* dst = head < a.heads_q
                 ? static_cast<T*>(a.q) + (token * a.heads_q + head) * int64_t(a.head_dim)
                 : static_cast<T*>(a.k) + (row * a.heads_kv + head - a.heads_q) * int64_t(a.head_dim);
    dst[j] = from_float<T>(x1 * c - x2 * s);
    dst[j + half] = from_float<T>(x2 * c + x1 * s);
  }
}

}  // namespace

void rope_qkv(const RopeQkvArgs& args, DType dtype, cudaStream_t stream) {
  const int64_t total = args.tokens * (args.heads_q + 2 * args.heads_kv) * (args.head_dim / 2);
  if (total == 0) return;
  const unsigned blocks = unsigned(std::min<int64_t>(blocks_for(total, kThreads), 1 << 20));
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    launch_chained(rope_qkv_kernel<T>, blocks, kThreads, 0, stream, args);
  });
}

}  // namespace qwenvl::cuda
