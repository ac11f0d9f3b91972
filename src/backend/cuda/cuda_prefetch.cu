// Backend::prefetch's kernel: each thread asks L2 for one 32 KB chunk of the range with a bulk
// prefetch (cp.async.bulk.prefetch.L2) and the kernel ends without waiting for the data.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_launch.cuh"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 32;
constexpr size_t kChunkBytes = 32 << 10;

__global__ void prefetch_kernel(const char* p, size_t bytes) {
  const size_t begin = (size_t(blockIdx.x) * kThreads + threadIdx.x) * kChunkBytes;
  if (begin >= bytes) return;
  prefetch_l2(p + begin, unsigned(bytes - begin < kChunkBytes ? bytes - begin : kChunkBytes));
}

}  // namespace

void prefetch_to_l2(const void* p, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  const size_t chunks = (bytes + kChunkBytes - 1) / kChunkBytes;
  prefetch_kernel<<<unsigned((chunks + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      static_cast<const char*>(p), bytes);
  CUDA_CHECK_LAUNCH();
}

}  // namespace qwenvl::cuda
