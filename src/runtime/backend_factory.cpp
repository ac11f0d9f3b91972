// make_backend: the one place that knows every backend (declared in backend/backend.h).
#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/thread_pool.h"
#ifdef QWENVL_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace qwenvl {

std::unique_ptr<Backend> make_backend(const std::string& device, DType cuda_dtype, int threads) {
  if (device != "cpu" && device != "cuda" && device != "auto")
    fail("unknown device '", device, "' (expected cpu, cuda or auto)");
  if (threads < 0) fail("the thread count must be >= 0 (0: all cores), got ", threads);
  // The pool also serves host-side work (image preprocessing) when the model runs on CUDA.
  ThreadPool::set_global_threads(threads);
#ifdef QWENVL_HAVE_CUDA
  if (device == "cuda" || (device == "auto" && cuda_device_available()))
    return make_cuda_backend(cuda_dtype);
#else
  if (device == "cuda") fail("this qwenvl was built without CUDA; use --device cpu");
#endif
  return std::make_unique<CpuBackend>();
}

std::vector<int64_t> gpu_free_memory() {
#ifdef QWENVL_HAVE_CUDA
  return cuda_free_memory();
#else
  return {};
#endif
}

std::string gpu_name() {
#ifdef QWENVL_HAVE_CUDA
  return cuda_device_name();
#else
  return "";
#endif
}

std::optional<GpuBandwidths> measure_gpu_bandwidths() {
#ifdef QWENVL_HAVE_CUDA
  return cuda_measure_bandwidths();
#else
  return std::nullopt;
#endif
}

double measure_host_read_bandwidth() { return cpu_measure_host_read_bandwidth(); }

}  // namespace qwenvl
