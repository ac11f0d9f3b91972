#pragma once
// What CudaBackend keeps on the device: the stream, the memory regions, the pinned staging ring,
// cuBLASLt's handle and plan cache, the uploaded rope tables and the captured graphs.
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_linear.h"
#include "backend/cuda/cuda_profile.h"
#include "backend/fixed_costs.h"
#include "core/dtype.h"

namespace qwenvl {

// The row count whose cuBLASLt algorithm every product of a shape runs under batch invariance: a
// decode batch's size, whose algorithms split small products over enough blocks to stream their
// weights, and which prefill chunks can run too.
constexpr int64_t kInvariantRows = 64;

// A region of device memory handed out front to back (256-byte aligned, as cuBLASLt and 16-byte
// vector loads want). `base` belongs to CudaState, which frees it.
struct DeviceRegion {
  const char* what = "";
  char* base = nullptr;
  size_t capacity = 0, used = 0, peak = 0;
  void* take(size_t bytes, const char* for_what);
};

// Host memory the DMA engine can read directly, split into slots that are reused once the copy
// that last read them is complete (an event per slot). Each slot has a twin on the device, where
// raw chunks land before a conversion kernel writes them to their destination.
struct StagingRing {
  static constexpr int kSlots = kStagingSlots;
  static constexpr size_t kSlotBytes = kStagingSlotBytes;
  char* host = nullptr;    // kSlots * kSlotBytes, pinned
  char* device = nullptr;  // kSlots * kSlotBytes, in the internal region
  std::array<cudaEvent_t, kSlots> done{};
  int next = 0;
  int acquire();  // waits until the slot's previous copy finished
};

// Streamed weights (Backend::reserve_streaming): the groups' pinned host copies, the slots on the
// device, and a copy stream that fills the slots while the main stream computes. Per slot, an
// event when its copy has landed and one when the ops reading it have run.
struct StreamingBuffers {
  char* host = nullptr;   // pinned
  char* slots = nullptr;  // device
  cudaStream_t copy_stream = nullptr;
  cudaEvent_t pass_start = nullptr;
  std::vector<cudaEvent_t> filled, freed;
  void release();
};

struct RopeTable {
  int head_dim = 0;
  std::vector<int32_t> pos_row;
  std::vector<float> inv_freq;
  int32_t* device_pos_row = nullptr;
  float* device_inv_freq = nullptr;
};

// Backend::prefetch's default reach per weight: the decode step's output projection and a good
// part of its gate/up weight fit in H100's 50 MB L2 beside the streamed weights; a larger reach
// evicts more than it hides (QWENVL_PREFETCH_MB overrides it; docs/CUDA.md).
constexpr size_t kDefaultPrefetchBytes = size_t(12) << 20;

struct CudaState {
  int device = 0;
  int multiprocessors = 0;
  cudaStream_t stream = nullptr;
  DeviceRegion weights{"weights"}, persistent{"persistent"}, workspace{"workspace"};
  // Our own scratch: cuBLASLt's workspace, staging twins, attention partials, sampling, rope.
  DeviceRegion internal{"internal scratch"};
  char* cublas_workspace = nullptr;
  size_t cublas_workspace_bytes = 0;
  char* attention_scratch = nullptr;
  size_t attention_scratch_bytes = 0;
  char* sample_scratch = nullptr;
  size_t sample_scratch_bytes = 0;
  StagingRing staging;
  StreamingBuffers streaming;
  // Mailboxes in mapped pinned memory (cuda_mailbox.cu): kPendingReads for begin_read (tagged
  // ticket + 1), then kPendingReads for publish_row (tagged tag + 1), kMailboxBytes each.
  static constexpr size_t kMailboxBytes = cuda::kMailboxValueOffset + Backend::kReadBytes;
  char* mailbox_host = nullptr;
  char* mailbox_mapped = nullptr;  // mailbox_host as kernels address it
  std::unique_ptr<LinearPlanner> linear;
  // A cuBLASLt handle held from construction on, so that the library's kernels are loaded (and
  // the device memory they take is spent) before anyone measures what is free for the budgets.
  cublasLtHandle_t library_handle = nullptr;
  bool prefer_gemv = true;
  bool batch_invariant = false;  // CudaBackend::set_batch_invariant
  // Epilogue fusions of the decode GEMV (SwiGLU, rotary); QWENVL_CUDA_UNFUSED=1 turns them off,
  // for measuring what they save.
  bool fuse_epilogues = true;
  // Backend::prefetch: at most prefetch_bytes of a weight (QWENVL_PREFETCH_MB; 0 turns it off),
  // fetched by a kernel on side_stream that forks from `stream` where prefetch is called and joins
  // it before the end of a captured graph or a synchronize.
  size_t prefetch_bytes = 0;
  cudaStream_t side_stream = nullptr;
  cudaEvent_t fork_event = nullptr, join_event = nullptr;
  bool side_pending = false;
  std::vector<RopeTable> rope_tables;
  std::map<int, cudaGraphExec_t> graphs;
  OpProfiler profiler;  // off unless QWENVL_PROFILE_OPS is set
  bool reserved = false;

  ~CudaState();
  void release_memory();
};

// The side branch (Backend::prefetch, publish_row) rejoins the main stream: ops after this wait
// for its work.
void join_side_stream(CudaState& s);

}  // namespace qwenvl
