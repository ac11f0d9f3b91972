#pragma once
// Programmatic dependent launch (Hopper): a kernel launched with launch_chained() may start while
// the kernel before it on the stream is still finishing. It must call wait_for_producer() before
// it reads anything an earlier kernel wrote or writes anything an earlier kernel reads; before
// that it may only touch memory no kernel writes (weights), which is how a matrix-vector product
// starts streaming its weights while the previous op drains. signal_consumer() lets the next
// chained kernel launch; calling it right after wait_for_producer() keeps one kernel in flight
// ahead, never a pile of waiting ones. In a decode step, where an op's work is a few
// microseconds, this hides most of the launch gap between kernels, also inside CUDA graphs
// (stream capture records the programmatic edges).
#include <cuda_runtime.h>

#include <utility>

#include "backend/cuda/cuda_check.h"

namespace qwenvl::cuda {

__device__ __forceinline__ void wait_for_producer() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void signal_consumer() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Both, in the order every chained kernel without a weight prologue uses.
__device__ __forceinline__ void chain_start() {
  wait_for_producer();
  signal_consumer();
}

// Asks L2 to fetch [p, p + bytes) (bytes a multiple of 16, p 16-byte aligned) without waiting.
__device__ __forceinline__ void prefetch_l2(const void* p, unsigned bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#endif
}

// Lets `kernel` use `bytes` of dynamic shared memory beyond the 48 KB default; the attribute
// belongs to the device function, so it is set once per kernel (each one its own instantiation).
template <auto kernel>
void allow_dynamic_shared_memory(size_t bytes) {
  static const bool set = [&] {
    CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    return true;
  }();
  (void)set;
}

template <typename... Params, typename... Args>
void launch_chained(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                    cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, Params(std::forward<Args>(args))...));
}

}  // namespace qwenvl::cuda
