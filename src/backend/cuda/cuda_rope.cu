// Rotary embedding in place, "rotate_half" layout: pair (x[j], x[j + d/2]) turns by
// positions[pos_row[j], token] * inv_freq[j]. The angle and the rotation are computed in fp32
// (accurate sincosf, not the fast intrinsic: angles reach tens of thousands of radians), with
// one rounding at the end, as transformers' apply_rotary_pos_emb_vision does.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"

namespace qwenvl::cuda {

namespace {

template <typename T>
__global__ void rope_kernel(T* x, int64_t tokens, int heads, int head_dim,
                            const int32_t* positions, const int32_t* pos_row,
                            const float* inv_freq) {
  int half = head_dim / 2;
  int64_t total = tokens * heads * half;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    int j = int(i % half);
    int64_t token_head = i / half;
    int64_t token = token_head / heads;
    float angle = float(positions[pos_row[j] * tokens + token]) * inv_freq[j];
    float s, c;
    sincosf(angle, &s, &c);
    T* p = x + token_head * head_dim;
    float x1 = to_float(p[j]), x2 = to_float(p[j + half]);
    p[j] = from_float<T>(x1 * c - x2 * s);
    p[j + half] = from_float<T>(x2 * c + x1 * s);
  }
}

}  // namespace

void rope(void* x, DType dtype, int64_t tokens, int heads, int head_dim, const int32_t* positions,
          const int32_t* pos_row, const float* inv_freq, cudaStream_t stream) {
  int64_t total = tokens * heads * (head_dim / 2);
  if (total == 0) return;
  unsigned blocks = unsigned(std::min<int64_t>(blocks_for(total, 256), 1 << 20));
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    rope_kernel<T><<<blocks, 256, 0, stream>>>(static_cast<T*>(x), tokens, heads, head_dim,
                                               positions, pos_row, inv_freq);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace qwenvl::cuda
