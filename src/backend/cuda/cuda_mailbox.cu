// Kernels that hand small values to the host through mapped pinned memory (CudaBackend's
// begin_read and publish_row): one block copies the bytes, makes them visible system-wide, then
// writes the tag word the host polls.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels.h"

namespace qwenvl::cuda {

namespace {

constexpr int kThreads = 64;

__device__ void deliver(const unsigned char* src, size_t bytes, char* mailbox, uint64_t tag) {
  unsigned char* value = reinterpret_cast<unsigned char*>(mailbox + kMailboxValueOffset);
  for (size_t i = threadIdx.x; i < bytes; i += blockDim.x) value[i] = src[i];
  __threadfence_system();  // each thread's bytes reach the host before the tag
  __syncthreads();
  if (threadIdx.x == 0) *reinterpret_cast<volatile uint64_t*>(mailbox) = tag;
}

__global__ void copy_kernel(const unsigned char* src, size_t bytes, char* mailbox, uint64_t tag) {
  deliver(src, bytes, mailbox, tag);
}

__global__ void publish_row_kernel(const unsigned char* table, int64_t rows, size_t row_bytes,
                                   const int32_t* row, const int32_t* tag, char* first,
                                   int mailboxes, size_t mailbox_bytes) {
  const int64_t r = *row, t = *tag;
  if (r < 0 || r >= rows || t < 0) return;
  deliver(table + r * row_bytes, row_bytes, first + (t % mailboxes) * mailbox_bytes,
          uint64_t(t) + 1);
}

}  // namespace

void copy_to_mailbox(const void* src, size_t bytes, char* mailbox, uint64_t tag,
                     cudaStream_t stream) {
  copy_kernel<<<1, kThreads, 0, stream>>>(static_cast<const unsigned char*>(src), bytes, mailbox,
                                          tag);
  CUDA_CHECK_LAUNCH();
}

void publish_row_to_mailbox(const void* table, int64_t rows, size_t row_bytes, const int32_t* row,
                            const int32_t* tag, char* first, int mailboxes, size_t mailbox_bytes,
                            cudaStream_t stream) {
  publish_row_kernel<<<1, kThreads, 0, stream>>>(static_cast<const unsigned char*>(table), rows,
                                                 row_bytes, row, tag, first, mailboxes,
                                                 mailbox_bytes);
  CUDA_CHECK_LAUNCH();
}

}  // namespace qwenvl::cuda
