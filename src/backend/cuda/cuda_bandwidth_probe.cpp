// Timed copies on GPU 0 for the memory plan's estimates: device memory (a device-to-device copy,
// counted as the bytes read plus written) and pinned host memory to the device. Each is the best
// of a few repetitions after a warm-up, over buffers large enough to leave the caches.
#include <cuda_runtime.h>

#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

namespace qwenvl {

namespace {

constexpr size_t kProbeBytes = size_t(256) << 20;
constexpr int kRepetitions = 3;

// Seconds of the fastest of kRepetitions copies (after one untimed).
double fastest_copy(void* dst, const void* src, cudaMemcpyKind kind, cudaStream_t stream) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  float best_ms = 0;
  for (int i = 0; i <= kRepetitions; ++i) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    CUDA_CHECK(cudaMemcpyAsync(dst, src, kProbeBytes, kind, stream));
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (i == 1 || (i > 1 && ms < best_ms)) best_ms = ms;
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return std::max(double(best_ms), 1e-3) / 1e3;
}

}  // namespace

std::string cuda_device_name() {
  if (!cuda_device_available()) return "";
  cudaDeviceProp props{};
  CUDA_CHECK(cudaGetDeviceProperties(&props, 0));
  return props.name;
}

std::optional<GpuBandwidths> cuda_measure_bandwidths() {
  if (!cuda_device_available()) return std::nullopt;
  int current = 0;
  CUDA_CHECK(cudaGetDevice(&current));
  CUDA_CHECK(cudaSetDevice(0));
  void *a = nullptr, *b = nullptr, *host = nullptr;
  cudaStream_t stream = nullptr;
  GpuBandwidths out;
  try {
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaMalloc(&a, kProbeBytes));
    CUDA_CHECK(cudaMalloc(&b, kProbeBytes));
    CUDA_CHECK(cudaMallocHost(&host, kProbeBytes));
    CUDA_CHECK(cudaMemsetAsync(a, 0, kProbeBytes, stream));
    std::fill_n(static_cast<char*>(host), kProbeBytes, char(1));
    out.memory = 2.0 * double(kProbeBytes) / fastest_copy(b, a, cudaMemcpyDeviceToDevice, stream);
    out.host_to_device =
        double(kProbeBytes) / fastest_copy(a, host, cudaMemcpyHostToDevice, stream);
  } catch (...) {
    cudaFree(a);
    cudaFree(b);
    cudaFreeHost(host);
    if (stream) cudaStreamDestroy(stream);
    cudaSetDevice(current);
    throw;
  }
  CUDA_CHECK(cudaFree(a));
  CUDA_CHECK(cudaFree(b));
  CUDA_CHECK(cudaFreeHost(host));
  CUDA_CHECK(cudaStreamDestroy(stream));
  CUDA_CHECK(cudaSetDevice(current));
  return out;
}

}  // namespace qwenvl
