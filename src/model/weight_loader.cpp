#include "model/weight_loader.h"

#include <cstring>

namespace qwenvl {

// Backends align every allocation to at most kAllocationAlignment bytes.
void WeightLoader::count(int64_t elements, DType dtype) {
  bytes_ += (size_t(elements) * dtype_size(dtype) + kAllocationAlignment - 1) /
            kAllocationAlignment * kAllocationAlignment;
}

Tensor WeightLoader::upload(const Tensor& host) {
  const DType dtype = in_place() ? host.dtype() : compute_;
  if (!in_place()) count(host.numel(), dtype);
  if (!backend_) return host;
  return backend_->upload_weight(host, dtype);
}

Tensor WeightLoader::get(const std::string& name) { return upload(checkpoint_.get(name)); }

Tensor WeightLoader::reshaped(const std::string& name, Shape shape) {
  return upload(checkpoint_.get(name).view(shape));
}

namespace {

int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// `part` with zero rows appended up to `rows` rows, in its own dtype.
Tensor with_zero_rows(const Tensor& part, int64_t rows) {
  Shape shape = part.shape();
  shape[0] = rows;
  Tensor out = Tensor::empty(shape, part.dtype());
  const size_t bytes = size_t(part.numel()) * dtype_size(part.dtype());
  std::memcpy(out.data(), part.data(), bytes);
  std::memset(static_cast<char*>(out.data()) + bytes, 0,
              size_t(out.numel()) * dtype_size(part.dtype()) - bytes);
  return out;
}

}  // namespace

Tensor WeightLoader::stacked(const std::vector<std::string>& names, int64_t row_multiple) {
  std::vector<Tensor> parts;
  int64_t elements = 0;
  bool one_dtype = true, padded = false;
  for (const std::string& name : names) {
    Tensor part = checkpoint_.get(name);
    const int64_t rows = round_up(part.dim(0), row_multiple);
    if (rows != part.dim(0)) {
      part = with_zero_rows(part, rows);
      padded = true;
    }
    parts.push_back(part);
    elements += parts.back().numel();
    one_dtype = one_dtype && parts.back().dtype() == parts.front().dtype();
  }
  // Stacking copies on every backend; an in-place (f32) backend keeps the checkpoint's dtype.
  const DType dtype = !in_place() ? compute_ : one_dtype ? parts.front().dtype() : DType::F32;
  count(elements, dtype);
  if (!backend_) return Tensor();
  Tensor out = backend_->upload_weight_stacked(parts, dtype);
  // The CPU's copy replaces the mapped pages it was read from: keep resident memory at one copy.
  if (in_place() && !padded)
    for (const Tensor& part : parts) checkpoint_.release_pages(part);
  return out;
}

Tensor WeightLoader::padded_columns(const std::string& name, int64_t multiple) {
  const Tensor& w = checkpoint_.get(name);
  const int64_t rows = w.dim(0), cols = w.dim(1), padded = round_up(cols, multiple);
  if (padded == cols) return get(name);
  Tensor out = Tensor::empty({rows, padded}, w.dtype());
  const size_t element = dtype_size(w.dtype());
  std::memset(out.data(), 0, size_t(out.numel()) * element);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(static_cast<char*>(out.data()) + size_t(r * padded) * element,
                static_cast<const char*>(w.data()) + size_t(r * cols) * element,
                size_t(cols) * element);
  if (!in_place()) return upload(out);
  // The CPU computes from this host copy itself: count it, as a stacked weight is counted.
  count(out.numel(), out.dtype());
  if (!backend_) return Tensor();
  return backend_->upload_weight_stacked({out}, out.dtype());
}

}  // namespace qwenvl
