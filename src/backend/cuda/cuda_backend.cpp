// CudaBackend: device, memory regions, host copies through the pinned staging ring, CUDA graphs.
// The ops' checks and dispatch live in cuda_ops.cpp.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_state.h"
#include "backend/fixed_costs.h"
#include "backend/stacked_shape.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

void check_host(const Tensor& t, const char* op) {
  if (t.device() != Device::CPU)
    fail_internal("CUDA ", op, " expects a host tensor, got a device one");
}

void check_device(const Tensor& t, const char* op) {
  if (t.device() != Device::CUDA)
    fail_internal("CUDA ", op, " expects a CUDA tensor, got a host one");
}

bool convertible(DType from, DType to) { return from == to || (is_float(from) && is_float(to)); }

}  // namespace

void* DeviceRegion::take(size_t bytes, const char* for_what) {
  size_t begin = allocation_size(used);
  if (begin + bytes > capacity)
    fail_internal("the CUDA ", what, " of ", capacity, " bytes is exhausted: ", used,
                  " are in use and ", for_what, " needs ", bytes, " more; reserve a larger ", what);
  used = begin + bytes;
  peak = std::max(peak, used);
  return base + begin;
}

int StagingRing::acquire() {
  int slot = next;
  next = (next + 1) % kSlots;
  CUDA_CHECK(cudaEventSynchronize(done[slot]));
  return slot;
}

CudaState::~CudaState() {
  for (auto& [key, exec] : graphs) cudaGraphExecDestroy(exec);
  linear.reset();
  release_memory();
  streaming.release();
  if (library_handle) cublasLtDestroy(library_handle);
  for (cudaEvent_t e : staging.done)
    if (e) cudaEventDestroy(e);
  if (staging.host) cudaFreeHost(staging.host);
  if (mailbox_host) cudaFreeHost(mailbox_host);
  if (side_stream) {
    cudaStreamSynchronize(side_stream);
    cudaStreamDestroy(side_stream);
  }
  if (fork_event) cudaEventDestroy(fork_event);
  if (join_event) cudaEventDestroy(join_event);
  if (stream) cudaStreamDestroy(stream);
}

void CudaState::release_memory() {
  for (DeviceRegion* r : {&weights, &persistent, &workspace, &internal}) {
    if (r->base) cudaFree(r->base);
    r->base = nullptr;
    r->capacity = r->used = r->peak = 0;
  }
  rope_tables.clear();
  reserved = false;
}

namespace {
// CUDA loads a kernel's module at its first launch by default; a server or a timed first token
// should not pay that. Must run before the runtime initialises, so both entry points call it.
void prefer_eager_module_loading() { setenv("CUDA_MODULE_LOADING", "EAGER", /*overwrite=*/0); }
}  // namespace

bool cuda_device_available() {
  prefer_eager_module_loading();
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

std::vector<int64_t> cuda_free_memory() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: no GPU to plan for
    return {};
  }
  int current = 0;
  CUDA_CHECK(cudaGetDevice(&current));
  std::vector<int64_t> free_bytes;
  for (int d = 0; d < count; ++d) {
    size_t free = 0, total = 0;
    CUDA_CHECK(cudaSetDevice(d));
    CUDA_CHECK(cudaMemGetInfo(&free, &total));
    free_bytes.push_back(int64_t(free));
  }
  CUDA_CHECK(cudaSetDevice(current));
  return free_bytes;
}

std::unique_ptr<Backend> make_cuda_backend(DType dtype) {
  prefer_eager_module_loading();
  return std::make_unique<CudaBackend>(dtype);
}

CudaBackend::CudaBackend(DType dtype) : dtype_(dtype), state_(std::make_unique<CudaState>()) {
  if (dtype != DType::BF16 && dtype != DType::F16)
    fail("the CUDA backend computes in bf16 or f16, not ", dtype_name(dtype));
  if (!cuda_device_available())
    fail_device(
        "no CUDA device is available (check the driver with nvidia-smi, or use --device cpu)");
  CudaState& s = *state_;
  CUDA_CHECK(cudaGetDevice(&s.device));
  CUDA_CHECK(cudaDeviceGetAttribute(&s.multiprocessors, cudaDevAttrMultiProcessorCount, s.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  const char* unfused = std::getenv("QWENVL_CUDA_UNFUSED");
  s.fuse_epilogues = !(unfused && *unfused && std::string(unfused) != "0");
  const char* prefetch_mb = std::getenv("QWENVL_PREFETCH_MB");
  s.prefetch_bytes = size_t(prefetch_mb && *prefetch_mb ? std::atof(prefetch_mb) * (1 << 20)
                                                        : kDefaultPrefetchBytes);
  CUDA_CHECK(cudaStreamCreateWithFlags(&s.side_stream, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&s.fork_event, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventCreateWithFlags(&s.join_event, cudaEventDisableTiming));
  CUDA_CHECK(cudaMallocHost(&s.staging.host, StagingRing::kSlots * StagingRing::kSlotBytes));
  for (cudaEvent_t& e : s.staging.done) {
    CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(e, s.stream));
  }
  const size_t mailbox_bytes = 2 * kPendingReads * CudaState::kMailboxBytes;
  CUDA_CHECK(cudaMallocHost(&s.mailbox_host, mailbox_bytes));
  std::memset(s.mailbox_host, 0, mailbox_bytes);  // tag 0: nothing delivered
  CUDA_CHECK(
      cudaHostGetDevicePointer(reinterpret_cast<void**>(&s.mailbox_mapped), s.mailbox_host, 0));
  if (cublasLtCreate(&s.library_handle) != CUBLAS_STATUS_SUCCESS)
    fail_device("could not initialise cuBLASLt");
}

CudaBackend::~CudaBackend() {
  if (state_ && state_->stream) cudaStreamSynchronize(state_->stream);
  if (state_) state_->profiler.report();
}

void CudaBackend::profile_section(const std::string& name) { state_->profiler.section(name); }

std::string CudaBackend::name() const { return cat("cuda-", dtype_name(dtype_)); }

void CudaBackend::reserve(size_t weight_bytes, size_t persistent_bytes, size_t workspace_bytes) {
  CudaState& s = *state_;
  CUDA_CHECK(cudaStreamSynchronize(s.stream));
  s.linear.reset();
  for (auto& [key, exec] : s.graphs) cudaGraphExecDestroy(exec);
  s.graphs.clear();
  s.release_memory();
  size_t staging_twin = StagingRing::kSlots * StagingRing::kSlotBytes;
  s.attention_scratch_bytes = kAttentionScratchBytes;
  s.sample_scratch_bytes = cuda::sample_scratch_bytes(kMaxSampleVocab);
  size_t internal = allocation_size(kCublasWorkspaceBytes) + allocation_size(staging_twin) +
                    allocation_size(s.attention_scratch_bytes) +
                    allocation_size(s.sample_scratch_bytes) + kRopeTableBytes;
  for (auto [region, bytes] :
       {std::pair{&s.weights, weight_bytes}, std::pair{&s.persistent, persistent_bytes},
        std::pair{&s.workspace, workspace_bytes}, std::pair{&s.internal, internal}}) {
    if (bytes == 0) continue;
    cudaError_t status = cudaMalloc(&region->base, bytes);
    if (status != cudaSuccess) {
      cudaGetLastError();
      s.release_memory();
      fail_resource("could not reserve ", bytes, " bytes of GPU memory for the CUDA ", region->what,
                    " (", cudaGetErrorString(status), "); lower the memory budget");
    }
    region->capacity = bytes;
  }
  s.cublas_workspace = static_cast<char*>(s.internal.take(kCublasWorkspaceBytes, "cuBLASLt"));
  s.cublas_workspace_bytes = kCublasWorkspaceBytes;
  s.staging.device = static_cast<char*>(s.internal.take(staging_twin, "staging"));
  s.attention_scratch =
      static_cast<char*>(s.internal.take(s.attention_scratch_bytes, "attention partials"));
  s.sample_scratch = static_cast<char*>(s.internal.take(s.sample_scratch_bytes, "sampling"));
  // The sampler's per-id marks start (and are left) zero.
  CUDA_CHECK(cudaMemsetAsync(s.sample_scratch, 0, s.sample_scratch_bytes, s.stream));
  s.linear = std::make_unique<LinearPlanner>(s.cublas_workspace, s.cublas_workspace_bytes);
  s.linear->set_fixed_bucket(s.batch_invariant ? kInvariantRows : 0);
  s.reserved = true;
}

static Tensor take_tensor(CudaState& s, DeviceRegion& region, const Shape& shape, DType dtype) {
  if (!s.reserved) fail_internal("the CUDA backend has no memory yet: call reserve() first");
  size_t bytes = size_t(shape.numel()) * dtype_size(dtype);
  void* p = region.take(bytes, cat("a ", shape.str(), " ", dtype_name(dtype), " tensor").c_str());
  return Tensor(p, dtype, shape, Device::CUDA);
}

Tensor CudaBackend::alloc_persistent(const Shape& shape, DType dtype) {
  return take_tensor(*state_, state_->persistent, shape, dtype);
}

Tensor CudaBackend::alloc(const Shape& shape, DType dtype) {
  return take_tensor(*state_, state_->workspace, shape, dtype);
}

size_t CudaBackend::workspace_mark() const { return state_->workspace.used; }

void CudaBackend::workspace_release(size_t mark) {
  QWENVL_CHECK(mark <= state_->workspace.used, "workspace mark ", mark, " is above the ",
               state_->workspace.used, " bytes in use");
  state_->workspace.used = mark;
}

size_t CudaBackend::peak_bytes() const {
  const CudaState& s = *state_;
  return s.weights.capacity + s.persistent.capacity + s.workspace.capacity + s.internal.capacity +
         streaming_device_bytes();
}

// Into pinned memory across the thread pool when large: one thread's memcpy (several GB/s) would
// make a 1 MP image's 15 MB of pixel values wait milliseconds before the vision tower can start.
static void copy_to_pinned(char* pinned, const char* src, size_t bytes) {
  constexpr size_t kPiece = size_t(1) << 20;
  if (bytes < 2 * kPiece) {
    std::memcpy(pinned, src, bytes);
    return;
  }
  const int64_t pieces = int64_t((bytes + kPiece - 1) / kPiece);
  ThreadPool::global().parallel_for(pieces, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const size_t offset = size_t(i) * kPiece;
      std::memcpy(pinned + offset, src + offset, std::min(kPiece, bytes - offset));
    }
  });
}

// Host -> device through the staging ring: chunks are memcpy'd into a pinned slot, copied by the
// DMA engine (to the destination, or to the slot's device twin followed by a conversion kernel),
// and the slot is reused once the event recorded after its last reader has completed.
static void upload(CudaState& s, const void* host, DType host_dtype, void* device,
                   DType device_dtype, int64_t n) {
  size_t in_size = dtype_size(host_dtype), out_size = dtype_size(device_dtype);
  int64_t per_chunk = int64_t(StagingRing::kSlotBytes / std::max(in_size, out_size));
  for (int64_t begin = 0; begin < n; begin += per_chunk) {
    int64_t count = std::min(per_chunk, n - begin);
    int slot = s.staging.acquire();
    char* pinned = s.staging.host + size_t(slot) * StagingRing::kSlotBytes;
    char* twin = s.staging.device + size_t(slot) * StagingRing::kSlotBytes;
    copy_to_pinned(pinned, static_cast<const char*>(host) + begin * in_size, count * in_size);
    char* dst = static_cast<char*>(device) + begin * out_size;
    if (host_dtype == device_dtype) {
      CUDA_CHECK(cudaMemcpyAsync(dst, pinned, count * in_size, cudaMemcpyHostToDevice, s.stream));
    } else {
      CUDA_CHECK(cudaMemcpyAsync(twin, pinned, count * in_size, cudaMemcpyHostToDevice, s.stream));
      cuda::convert(twin, host_dtype, dst, device_dtype, count, s.stream);
    }
    CUDA_CHECK(cudaEventRecord(s.staging.done[slot], s.stream));
  }
}

Tensor CudaBackend::upload_weight(const Tensor& host, DType dtype) {
  check_host(host, "upload_weight");
  if (!convertible(host.dtype(), dtype))
    fail_internal("cannot upload a ", dtype_name(host.dtype()), " weight as ", dtype_name(dtype));
  Tensor out = take_tensor(*state_, state_->weights, host.shape(), dtype);
  upload(*state_, host.data(), host.dtype(), out.data(), dtype, host.numel());
  return out;
}

Tensor CudaBackend::upload_weight_stacked(const std::vector<Tensor>& parts, DType dtype) {
  const Shape stacked = stacked_shape(parts, "CUDA upload_weight_stacked");
  Tensor out = take_tensor(*state_, state_->weights, stacked, dtype);
  int64_t offset = 0;
  for (const Tensor& part : parts) {
    check_host(part, "upload_weight_stacked");
    if (!convertible(part.dtype(), dtype))
      fail_internal("cannot upload a ", dtype_name(part.dtype()), " weight as ", dtype_name(dtype));
    upload(*state_, part.data(), part.dtype(),
           static_cast<char*>(out.data()) + offset * int64_t(dtype_size(dtype)), dtype,
           part.numel());
    offset += part.numel();
  }
  return out;
}

namespace {
// The checks both copy directions make on their source and destination.
void check_copy(const char* what, const Tensor& src, const Tensor& dst) {
  if (src.numel() != dst.numel())
    fail_internal(what, " of ", src.shape().str(), " into ", dst.shape().str(),
                  ": element counts differ");
  if (!convertible(src.dtype(), dst.dtype()))
    fail_internal(what, " cannot convert ", dtype_name(src.dtype()), " to ",
                  dtype_name(dst.dtype()));
}
}  // namespace

void CudaBackend::copy_from_host(const Tensor& host, Tensor& device_dst) {
  check_host(host, "copy_from_host");
  check_device(device_dst, "copy_from_host");
  check_copy("copy_from_host", host, device_dst);
  upload(*state_, host.data(), host.dtype(), device_dst.data(), device_dst.dtype(), host.numel());
}

void CudaBackend::copy_to_host(const Tensor& device_src, Tensor& host_dst) {
  check_device(device_src, "copy_to_host");
  check_host(host_dst, "copy_to_host");
  check_copy("copy_to_host", device_src, host_dst);
  CudaState& s = *state_;
  DType from = device_src.dtype(), to = host_dst.dtype();
  size_t in_size = dtype_size(from), out_size = dtype_size(to);
  int64_t n = device_src.numel();
  int64_t per_chunk = int64_t(StagingRing::kSlotBytes / std::max(in_size, out_size));
  for (int64_t begin = 0; begin < n; begin += per_chunk) {
    int64_t count = std::min(per_chunk, n - begin);
    int slot = s.staging.acquire();
    char* pinned = s.staging.host + size_t(slot) * StagingRing::kSlotBytes;
    char* twin = s.staging.device + size_t(slot) * StagingRing::kSlotBytes;
    const char* src = static_cast<const char*>(device_src.data()) + begin * in_size;
    if (from != to) {
      cuda::convert(src, from, twin, to, count, s.stream);
      src = twin;
    }
    CUDA_CHECK(cudaMemcpyAsync(pinned, src, count * out_size, cudaMemcpyDeviceToHost, s.stream));
    CUDA_CHECK(cudaEventRecord(s.staging.done[slot], s.stream));
    CUDA_CHECK(cudaEventSynchronize(s.staging.done[slot]));
    std::memcpy(static_cast<char*>(host_dst.data()) + begin * out_size, pinned, count * out_size);
  }
}

// Mailbox `box`: begin_read's tickets use 0 .. kPendingReads - 1, publish_row the ones after.
static char* mailbox(char* base, size_t box) { return base + box * CudaState::kMailboxBytes; }

int64_t CudaBackend::begin_read(const Tensor& device_src) {
  check_device(device_src, "begin_read");
  CudaState& s = *state_;
  const int64_t ticket = open_read(device_src);
  cuda::copy_to_mailbox(device_src.data(), device_src.nbytes(),
                        mailbox(s.mailbox_mapped, size_t(ticket % kPendingReads)),
                        uint64_t(ticket) + 1, s.stream);
  return ticket;
}

// Polls the mailbox's tag word until it reads `tag`: no event on the stream between two decode
// steps and no wake-up latency. Whether the device has failed, or finished without delivering,
// shows in cudaStreamQuery, asked every few microseconds.
static void wait_for_mailbox(CudaState& s, const char* box, uint64_t tag, const char* op) {
  const volatile uint64_t* word = reinterpret_cast<const volatile uint64_t*>(box);
  for (uint64_t spins = 1;; ++spins) {
    if (*word == tag) break;
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
    if (spins % 256 != 0) continue;
    const cudaError_t main = cudaStreamQuery(s.stream);
    const cudaError_t side = main == cudaSuccess ? cudaStreamQuery(s.side_stream) : main;
    if (side == cudaErrorNotReady) {
      if (spins > (1u << 16)) std::this_thread::yield();  // a long wait: leave the core
      continue;
    }
    CUDA_CHECK(side);
    if (*word != tag) fail_internal(op, ": the device finished without delivering the value");
  }
  std::atomic_thread_fence(std::memory_order_acquire);
}

void CudaBackend::end_read(int64_t ticket, Tensor& host_dst) {
  check_host(host_dst, "end_read");
  CudaState& s = *state_;
  const char* box = mailbox(s.mailbox_host, size_t(close_read(ticket, host_dst)));
  wait_for_mailbox(s, box, uint64_t(ticket) + 1, "end_read");
  std::memcpy(host_dst.data(), box + cuda::kMailboxValueOffset, host_dst.nbytes());
}

// Queues work(side_stream) after everything queued so far on the main stream, off the main
// stream's path: it rejoins at join_side_stream (a synchronize, a capture's end, or an op that
// reads what the side branch reads).
template <typename F>
static void on_side_branch(CudaState& s, F&& work) {
  CUDA_CHECK(cudaEventRecord(s.fork_event, s.stream));
  CUDA_CHECK(cudaStreamWaitEvent(s.side_stream, s.fork_event));
  work(s.side_stream);
  CUDA_CHECK(cudaEventRecord(s.join_event, s.side_stream));
  s.side_pending = true;
}

// On the side branch (as Backend::prefetch), so the ops queued after it do not wait for the
// write to reach the host.
void CudaBackend::publish_row(const Tensor& table, const Tensor& row, const Tensor& tag) {
  for (const Tensor* t : {&table, &row, &tag}) check_device(*t, "publish_row");
  const size_t row_bytes = check_publish(table, row, tag);
  CudaState& s = *state_;
  on_side_branch(s, [&](cudaStream_t side) {
    cuda::publish_row_to_mailbox(table.data(), table.dim(0), row_bytes, row.data<int32_t>(),
                                 tag.data<int32_t>(), mailbox(s.mailbox_mapped, kPendingReads),
                                 kPendingReads, CudaState::kMailboxBytes, side);
  });
}

void CudaBackend::wait_published(int64_t tag, Tensor& host_dst) {
  check_host(host_dst, "wait_published");
  if (tag < 0) fail_internal("wait_published: tag ", tag, " is negative");
  if (host_dst.nbytes() > kReadBytes)
    fail_internal("wait_published: host_dst is larger than a row");
  CudaState& s = *state_;
  const char* box = mailbox(s.mailbox_host, size_t(kPendingReads + tag % kPendingReads));
  wait_for_mailbox(s, box, uint64_t(tag) + 1, "wait_published");
  std::memcpy(host_dst.data(), box + cuda::kMailboxValueOffset, host_dst.nbytes());
}

// The side branch (on_side_branch: prefetch, publish_row) rejoins the main stream: a captured
// graph must end with every forked stream joined, and a synchronize must cover all work.
void join_side_stream(CudaState& s) {
  if (!s.side_pending) return;
  CUDA_CHECK(cudaStreamWaitEvent(s.stream, s.join_event));
  s.side_pending = false;
}

void CudaBackend::prefetch(const Tensor& weight) {
  CudaState& s = *state_;
  check_device(weight, "prefetch");
  const size_t bytes = std::min(weight.nbytes(), s.prefetch_bytes) / 16 * 16;
  if (bytes == 0) return;
  on_side_branch(s, [&](cudaStream_t side) { cuda::prefetch_to_l2(weight.data(), bytes, side); });
}

void CudaBackend::synchronize() {
  join_side_stream(*state_);
  CUDA_CHECK(cudaStreamSynchronize(state_->stream));
}

void CudaBackend::run_captured(int key, const std::function<void()>& enqueue) {
  CudaState& s = *state_;
  if (s.profiler.enabled()) {  // events inside a capture would time the capture
    enqueue();
    return;
  }
  auto found = s.graphs.find(key);
  if (found == s.graphs.end()) {
    cudaGraph_t graph = nullptr;
    // Relaxed: a first-seen rope table may be uploaded with a synchronous copy mid-capture.
    CUDA_CHECK(cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeRelaxed));
    try {
      enqueue();
      join_side_stream(s);
    } catch (...) {
      cudaStreamEndCapture(s.stream, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    CUDA_CHECK(cudaStreamEndCapture(s.stream, &graph));
    cudaGraphExec_t exec = nullptr;
    cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    CUDA_CHECK(status);
    found = s.graphs.emplace(key, exec).first;
  }
  CUDA_CHECK(cudaGraphLaunch(found->second, s.stream));
}

void CudaBackend::set_prefer_gemv(bool prefer) { state_->prefer_gemv = prefer; }

void CudaBackend::set_batch_invariant(bool on) {
  Backend::set_batch_invariant(on);
  CudaState& s = *state_;
  s.batch_invariant = on;
  s.prefer_gemv = !on;
  if (s.linear) s.linear->set_fixed_bucket(on ? kInvariantRows : 0);
}

}  // namespace qwenvl
