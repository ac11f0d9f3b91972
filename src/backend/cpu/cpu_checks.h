#pragma once
// Argument checks shared by the CPU ops. A wrong shape or dtype here is a bug in the model code,
// but it is reported as an Error naming the op and the tensor, never an abort.
#include <initializer_list>

#include "core/error.h"
#include "core/tensor.h"

namespace qwenvl {

inline void check_cpu(const Tensor& t, const char* op, const char* name) {
  if (t.device() != Device::CPU) fail_internal(op, ": tensor '", name, "' is not on the CPU");
  if (!t.defined()) fail_internal(op, ": tensor '", name, "' is empty (not allocated)");
}

inline void check_dtype(const Tensor& t, const char* op, const char* name,
                        std::initializer_list<DType> allowed) {
  for (DType d : allowed)
    if (t.dtype() == d) return;
  fail_internal(op, ": tensor '", name, "' has dtype ", dtype_name(t.dtype()),
                ", which this op does not take");
}

inline void check_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* a_name,
                             const char* b_name) {
  if (!(a.shape() == b.shape()))
    fail_internal(op, ": '", a_name, "' ", a.shape().str(), " and '", b_name, "' ", b.shape().str(),
                  " must have the same shape");
}

// The length of the last dimension (1 for a scalar-like rank-0 tensor).
inline int64_t last_dim(const Tensor& t) { return t.rank() ? t.dim(-1) : 1; }

}  // namespace qwenvl
