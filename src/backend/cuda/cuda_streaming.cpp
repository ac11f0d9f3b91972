// CudaBackend's streamed weights: pinned host copies of the streamed groups, copied into device
// slots on a copy stream that runs ahead of the main stream by up to `slots` groups.
#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_state.h"
#include "core/error.h"

namespace qwenvl {

void StreamingBuffers::release() {
  if (copy_stream) {
    cudaStreamSynchronize(copy_stream);
    cudaStreamDestroy(copy_stream);
  }
  for (cudaEvent_t e : filled) cudaEventDestroy(e);
  for (cudaEvent_t e : freed) cudaEventDestroy(e);
  if (pass_start) cudaEventDestroy(pass_start);
  if (slots) cudaFree(slots);
  if (host) cudaFreeHost(host);
  *this = StreamingBuffers();
}

void CudaBackend::reserve_streaming(size_t slot_bytes, int slots, size_t host_bytes) {
  CudaState& s = *state_;
  QWENVL_CHECK(slots >= 2, "streaming needs at least two slots, not ", slots);
  CUDA_CHECK(cudaStreamSynchronize(s.stream));
  s.streaming.release();
  StreamingBuffers& b = s.streaming;
  const size_t stride = allocation_size(slot_bytes);
  cudaError_t status = cudaMalloc(&b.slots, stride * size_t(slots));
  if (status == cudaSuccess) status = cudaHostAlloc(&b.host, std::max<size_t>(host_bytes, 1), 0);
  if (status != cudaSuccess) {
    cudaGetLastError();
    b.release();
    fail_resource("could not reserve the streamed weights (", slots, " device buffers of ",
                  slot_bytes, " bytes, ", host_bytes,
                  " bytes of pinned host memory): ", cudaGetErrorString(status));
  }
  CUDA_CHECK(cudaStreamCreateWithFlags(&b.copy_stream, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&b.pass_start, cudaEventDisableTiming));
  b.filled.resize(size_t(slots));
  b.freed.resize(size_t(slots));
  for (int i = 0; i < slots; ++i) {
    CUDA_CHECK(cudaEventCreateWithFlags(&b.filled[size_t(i)], cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&b.freed[size_t(i)], cudaEventDisableTiming));
  }
  streamed_.init(b.host, host_bytes, b.slots, stride, slots, Device::CUDA);
}

namespace {

// Copies group `id` into its slot on the copy stream, after whatever the copy stream already
// waits for, and marks the slot filled.
void copy_group(const StreamedWeights& w, StreamingBuffers& b, int id) {
  const int slot = w.slot_of(id);
  CUDA_CHECK(cudaMemcpyAsync(w.slot_memory(slot), w.host_of(id), w.group(id).bytes,
                             cudaMemcpyHostToDevice, b.copy_stream));
  CUDA_CHECK(cudaEventRecord(b.filled[size_t(slot)], b.copy_stream));
}

}  // namespace

void CudaBackend::begin_streamed_pass(int sequence) {
  CudaState& s = *state_;
  StreamingBuffers& b = s.streaming;
  if (streamed_.find(sequence, 0) < 0) return;
  // Every slot's last reader was queued on the main stream before this point.
  CUDA_CHECK(cudaEventRecord(b.pass_start, s.stream));
  CUDA_CHECK(cudaStreamWaitEvent(b.copy_stream, b.pass_start));
  for (int index = 0; index < streamed_.slots(); ++index) {
    const int id = streamed_.find(sequence, index);
    if (id < 0) break;
    copy_group(streamed_, b, id);
  }
}

void CudaBackend::use_streamed_group(int group) {
  CudaState& s = *state_;
  CUDA_CHECK(cudaStreamWaitEvent(s.stream, s.streaming.filled[size_t(streamed_.slot_of(group))]));
}

void CudaBackend::streamed_group_done(int group) {
  CudaState& s = *state_;
  StreamingBuffers& b = s.streaming;
  const StreamedWeights::Group& g = streamed_.group(group);
  const int next = streamed_.find(g.sequence, g.index + streamed_.slots());
  if (next < 0) return;  // nothing else of this pass goes to the slot
  const int slot = streamed_.slot_of(group);
  CUDA_CHECK(cudaEventRecord(b.freed[size_t(slot)], s.stream));
  CUDA_CHECK(cudaStreamWaitEvent(b.copy_stream, b.freed[size_t(slot)]));
  copy_group(streamed_, b, next);
}

}  // namespace qwenvl
