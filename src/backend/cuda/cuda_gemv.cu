// Decode-sized products (M <= 8 rows of x): out[M,N] = x[M,K] · w[N,K]^T (+ bias). Reading w is
// the whole cost, so the kernel is built to stream it at memory bandwidth:
// - a block of kThreads threads (128 for the q/k/v product, see launch) owns two rows of w (one
//   or four for a single token's plain products, see launch) and splits K between its threads
//   (16 bytes per load, several loads in flight per thread), so even a 2048x2048 matrix gives
//   hundreds of blocks: every SM has many loads outstanding from the first microsecond;
// - it is a chained launch (cuda_launch.cuh): before waiting for the kernel that writes x, it
//   asks L2 for the start of its rows, so weight traffic continues across kernel boundaries;
// - sums are fp32: per thread, then warp shuffles, then one shared-memory step across warps.
// Two epilogues spare the decode step a kernel each, rounding as torch rounds every op:
// - SwiGLU, for a stacked [gate; up] weight: the block's rows are gate row i and up row i, and it
//   writes silu(gate) * up;
// - rotary, for the stacked q/k/v projection: the block's rows are the pair (j, j + d/2) of one
//   head, which it rotates (q, k) and writes to q or to the key/value cache rows (see rope_qkv).
// (A third, the residual add + RMSNorm done by the last block to finish, is slower than the
// separate add_rms_norm kernel: every block pays the fence and ticket; see docs/CUDA.md.)
#include <algorithm>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_dispatch.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"
#include "backend/cuda/cuda_rope.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 256;
// Bytes of each row requested from L2 before the wait: enough to cover a launch gap at full
// bandwidth across the blocks that are resident early, small enough not to evict the producer's
// working set.
constexpr unsigned kPrefetchBytes = 8192;

enum class Epilogue { kPlain, kSwiglu, kRope };

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int j = 0; j < 8; ++j) out[j] = to_float(v[j]);
}

// The SwiGLU epilogue's two sums, rounded as the products' outputs would be, then silu_times.
template <typename T>
__device__ __forceinline__ float swiglu_of_sums(float gate, float up) {
  return silu_times<T>(to_float(from_float<T>(gate)), to_float(from_float<T>(up)));
}

// Row r of w among the block's R rows. Plain: R·b + r (the last one repeated past the end:
// computed, never written). SwiGLU (R = 2; n outputs, w has 2n rows): b and n + b. Rotary
// (R = 2): the pair (j, j + d/2) of head b / (d/2).
template <Epilogue E, int R>
__device__ __forceinline__ int row_of(int r, int n, int half) {
  const int b = blockIdx.x;
  if constexpr (E == Epilogue::kSwiglu) return b + r * n;
  if constexpr (E == Epilogue::kRope) return (b / half) * 2 * half + b % half + r * half;
  return min(R * b + r, n - 1);
}

// The rotary epilogue for token m: (x1, x2) = the pair's sums with bias, rounded as the product's
// output would be.
template <typename T>
__device__ __forceinline__ void rope_store(const RopeQkvArgs& a, int m, float x1, float x2) {
  const int half = a.head_dim / 2, b = blockIdx.x;
  const int head = b / half, j = b % half;
  const int64_t row = a.slots ? a.slots[m] : m;
  if (row < 0 || row >= a.kv_rows) return;  // the host checked slots; never write outside
  x1 = to_float(from_float<T>(x1)), x2 = to_float(from_float<T>(x2));
  bool rotate = false;
  T* dst = qkv_destination<T>(a, m, row, head, rotate);
  if (rotate) {
    float s, c;
    sincosf(rope_angle(a, m, j), &s, &c);
    rotate_pair<T>(a, x1, x2, c, s, dst[j], dst[j + half]);
  } else {
    dst[j] = from_float<T>(x1);
    dst[j + half] = from_float<T>(x2);
  }
}

// n: rows of w (plain, rotary) or outputs (SwiGLU, w has 2n rows).
template <typename T, typename O, typename B, int M, Epilogue E, int kBlock = kThreads, int R = 2>
__global__ void __launch_bounds__(kBlock)
    gemv_kernel(const T* __restrict__ x, const T* __restrict__ w, const B* __restrict__ bias,
                O* __restrict__ out, int n, int k, RopeQkvArgs rope) {
  constexpr int kBlockWarps = kBlock / 32;
  __shared__ float partial[kBlockWarps][M * R];
  const int half = rope.head_dim / 2;
  if (threadIdx.x < R)
    prefetch_l2(w + int64_t(row_of<E, R>(threadIdx.x, n, half)) * k,
                min(kPrefetchBytes, unsigned(k) * unsigned(sizeof(T))));
  chain_start();

  const uint4* wrow[R];
#pragma unroll
  for (int r = 0; r < R; ++r)
    wrow[r] = reinterpret_cast<const uint4*>(w + int64_t(row_of<E, R>(r, n, half)) * k);
  const uint4* xrow = reinterpret_cast<const uint4*>(x);
  const int chunks = k / 8;
  float acc[M][R];
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[m][r] = 0.0f;

#pragma unroll(4 / R)  // four 16-byte weight loads in flight per thread, whatever R
  for (int c = threadIdx.x; c < chunks; c += kBlock) {
    uint4 wraw[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wraw[r] = __ldcs(wrow[r] + c);  // streamed once
    float wf[R][8];
#pragma unroll
    for (int r = 0; r < R; ++r) unpack8<T>(wraw[r], wf[r]);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      float xf[8];
      unpack8<T>(__ldg(xrow + int64_t(m) * chunks + c), xf);
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[m][r] = fmaf(xf[j], wf[r][j], acc[m][r]);
    }
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int m = 0; m < M; ++m)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float sum = warp_sum(acc[m][r]);
      if (lane == 0) partial[warp][m * R + r] = sum;
    }
  __syncthreads();
  if (threadIdx.x >= M) return;
  const int m = threadIdx.x;
  float sum[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    sum[r] = 0.0f;
#pragma unroll
    for (int i = 0; i < kBlockWarps; ++i) sum[r] += partial[i][m * R + r];
    if (bias) sum[r] += to_float(bias[row_of<E, R>(r, n, half)]);
  }
  if constexpr (E == Epilogue::kSwiglu) {
    out[int64_t(m) * n + blockIdx.x] = from_float<O>(swiglu_of_sums<O>(sum[0], sum[1]));
  } else if constexpr (E == Epilogue::kRope) {
    rope_store<T>(rope, m, sum[0], sum[1]);
  } else {
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (R * blockIdx.x + r < n) out[int64_t(m) * n + R * blockIdx.x + r] = from_float<O>(sum[r]);
  }
}

template <typename T, typename O, typename B, Epilogue E>
void launch(const void* x, const void* w, const void* bias, void* out, int m, int n, int k,
            const RopeQkvArgs& rope, cudaStream_t stream) {
  // The q/k/v product runs blocks of 128 threads: 3B's 1,280 blocks then fit an H100 in one wave
  // instead of two (the same for every other product with K <= 2048 gains nothing).
  constexpr int threads = E == Epilogue::kRope ? 128 : kThreads;
  // Rows per block for a single token's plain products: one for long rows (the down
  // projections, K >= 8192: each thread keeps four loads of one row in flight rather than two of
  // each of two rows, and twice the blocks share out more evenly over the SMs; 3B's down
  // projection reads at 99% of copy bandwidth on an H100), four for short rows up to 8192 of them
  // (the o projections: half the blocks, each reading x once for four rows). Two otherwise
  // (SwiGLU and rotary pairs, M > 1, lm_head).
  const bool single = E == Epilogue::kPlain && m == 1;
  const int rows = !single ? 2 : k >= 8192 ? 1 : n <= 8192 ? 4 : 2;
  const unsigned blocks = E == Epilogue::kSwiglu ? unsigned(n)
                          : E == Epilogue::kRope ? unsigned(n / 2)
                                                 : unsigned((n + rows - 1) / rows);
  auto run = [&](auto kernel) {
    launch_chained(kernel, blocks, threads, 0, stream, static_cast<const T*>(x),
                   static_cast<const T*>(w), static_cast<const B*>(bias), static_cast<O*>(out), n,
                   k, rope);
  };
  if constexpr (E == Epilogue::kPlain) {
    if (rows == 1) return run(gemv_kernel<T, O, B, 1, E, threads, 1>);
    if (rows == 4) return run(gemv_kernel<T, O, B, 1, E, threads, 4>);
  }
  switch (m) {
    case 1:
      run(gemv_kernel<T, O, B, 1, E, threads>);
      break;
    case 2:
      run(gemv_kernel<T, O, B, 2, E, threads>);
      break;
    case 3:
      run(gemv_kernel<T, O, B, 3, E, threads>);
      break;
    case 4:
      run(gemv_kernel<T, O, B, 4, E, threads>);
      break;
    case 5:
      run(gemv_kernel<T, O, B, 5, E, threads>);
      break;
    case 6:
      run(gemv_kernel<T, O, B, 6, E, threads>);
      break;
    case 7:
      run(gemv_kernel<T, O, B, 7, E, threads>);
      break;
    case 8:
      run(gemv_kernel<T, O, B, 8, E, threads>);
      break;
    default:
      fail_internal("gemv takes 1 to ", kGemvMaxRows, " rows, not ", m);
  }
}

// Activations and outputs in the compute dtype.
template <Epilogue E>
void dispatch(const void* x, const void* w, const void* bias, DType bias_dtype, void* out, int m,
              int n, int k, const RopeQkvArgs& rope, DType dtype, cudaStream_t stream) {
  with_half(dtype, [&](auto t) {
    using T = decltype(t);
    with_float(bias ? bias_dtype : DType::F32, [&](auto b) {
      using B = decltype(b);
      launch<T, T, B, E>(x, w, bias, out, m, n, k, rope, stream);
    });
  });
}

}  // namespace

void gemv(const void* x, const void* w, const void* bias, DType bias_dtype, void* out,
          DType out_dtype, int m, int n, int k, DType dtype, cudaStream_t stream) {
  if (n == 0) return;
  if (out_dtype != DType::F32)
    return dispatch<Epilogue::kPlain>(x, w, bias, bias_dtype, out, m, n, k, RopeQkvArgs{}, dtype,
                                      stream);
  with_half(dtype, [&](auto t) {  // f32 output (logits)
    using T = decltype(t);
    with_float(bias ? bias_dtype : DType::F32, [&](auto b) {
      using B = decltype(b);
      launch<T, float, B, Epilogue::kPlain>(x, w, bias, out, m, n, k, RopeQkvArgs{}, stream);
    });
  });
}

void gemv_swiglu(const void* x, const void* w, const void* bias, DType bias_dtype, void* out, int m,
                 int f, int k, DType dtype, cudaStream_t stream) {
  if (f == 0) return;
  dispatch<Epilogue::kSwiglu>(x, w, bias, bias_dtype, out, m, f, k, RopeQkvArgs{}, dtype, stream);
}

void gemv_rope_qkv(const void* x, const void* w, const void* bias, DType bias_dtype,
                   const RopeQkvArgs& rope, int k, DType dtype, cudaStream_t stream) {
  const int n = (rope.heads_q + 2 * rope.heads_kv) * rope.head_dim;
  if (n == 0) return;
  dispatch<Epilogue::kRope>(x, w, bias, bias_dtype, nullptr, int(rope.tokens), n, k, rope, dtype,
                            stream);
}

}  // namespace qwenvl::cuda
