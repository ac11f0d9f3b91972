// gather_rows / scatter_rows: row copies by index, converting the dtype when the two sides
// differ (the embedding lookup reads a bf16 table into fp32 activations); increment, which
// advances the index tensors of a decode step.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_checks.h"
#include "backend/cpu/cpu_convert.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

// Elements per row of `t` when its rows are indexed by the first dimension.
int64_t row_elements(const Tensor& t) { return t.rank() && t.dim(0) ? t.numel() / t.dim(0) : 0; }

void check_rows_args(const char* op, const Tensor& table, const Tensor& indices,
                     const Tensor& rows) {
  check_cpu(table, op, "table");
  check_cpu(indices, op, "indices");
  check_cpu(rows, op, "rows");
  check_dtype(indices, op, "indices", {DType::I32});
  if (table.rank() < 1 || rows.rank() < 1)
    fail_internal(op, ": tensors must have at least one dimension");
  if (rows.dim(0) != indices.numel())
    fail_internal(op, ": ", indices.numel(), " indices for ", rows.dim(0), " rows ",
                  rows.shape().str());
  if (rows.numel() && row_elements(table) != row_elements(rows))
    fail_internal(op, ": rows of ", table.shape().str(), " and ", rows.shape().str(),
                  " differ in size");
  if (table.dtype() != rows.dtype() && !(is_float(table.dtype()) && is_float(rows.dtype())))
    fail_internal(op, ": cannot convert between ", dtype_name(table.dtype()), " and ",
                  dtype_name(rows.dtype()), " rows");
  const int32_t* idx = indices.data<int32_t>();
  for (int64_t i = 0; i < indices.numel(); ++i)
    if (idx[i] < 0 || idx[i] >= table.dim(0))
      fail_internal(op, ": index ", idx[i], " at position ", i, " is outside the ", table.dim(0),
                    " rows");
}

}  // namespace

void CpuBackend::gather_rows(const Tensor& src, const Tensor& indices, Tensor& out) {
  check_rows_args("gather_rows", src, indices, out);
  const int64_t re = row_elements(out);
  const size_t ss = dtype_size(src.dtype()) * re, os = dtype_size(out.dtype()) * re;
  const int32_t* idx = indices.data<int32_t>();
  const char* s = static_cast<const char*>(src.data());
  char* o = static_cast<char*>(out.data());
  ThreadPool::global().parallel_for(indices.numel(), 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      convert_elements(s + idx[i] * ss, src.dtype(), o + i * os, out.dtype(), re, "gather_rows");
  });
}

void CpuBackend::scatter_rows(const Tensor& src, const Tensor& indices, Tensor& dst) {
  check_rows_args("scatter_rows", dst, indices, src);
  const int64_t re = row_elements(src);
  const size_t ss = dtype_size(src.dtype()) * re, ds = dtype_size(dst.dtype()) * re;
  const int32_t* idx = indices.data<int32_t>();
  const char* s = static_cast<const char*>(src.data());
  char* d = static_cast<char*>(dst.data());
  // In index order, so that a repeated index keeps the last row, as a sequential loop would.
  for (int64_t i = 0; i < indices.numel(); ++i)
    convert_elements(s + i * ss, src.dtype(), d + idx[i] * ds, dst.dtype(), re, "scatter_rows");
}

void CpuBackend::increment(Tensor& values) {
  check_cpu(values, "increment", "values");
  check_dtype(values, "increment", "values", {DType::I32});
  int32_t* v = values.data<int32_t>();
  for (int64_t i = 0; i < values.numel(); ++i) ++v[i];
}

}  // namespace qwenvl
