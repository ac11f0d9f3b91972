#pragma once
// Turning CUDA and cuBLAS status codes into qwenvl::Error. Every runtime call and every launch
// is checked: a failure names the call and the CUDA message.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace qwenvl {

inline void check_cuda(cudaError_t status, const char* what, const char* file, int line) {
  if (status != cudaSuccess)
    fail_device("CUDA error in ", what, " at ", file, ":", line, ": ", cudaGetErrorString(status));
}

inline void check_cublas(cublasStatus_t status, const char* what, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail_device("cuBLAS error in ", what, " at ", file, ":", line, ": status ", int(status));
}

#define CUDA_CHECK(call) ::qwenvl::check_cuda((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) ::qwenvl::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: catches bad launch configurations at once (faults show up later).
#define CUDA_CHECK_LAUNCH() \
  ::qwenvl::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

}  // namespace qwenvl
