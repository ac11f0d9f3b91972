#include "model/weight_loader.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace qwenvl {

// Backends align every allocation to at most kAllocationAlignment bytes.
void WeightLoader::count(int64_t elements, DType dtype) {
  const size_t bytes = (size_t(elements) * dtype_size(dtype) + kAllocationAlignment - 1) /
                       kAllocationAlignment * kAllocationAlignment;
  (in_group_ ? group_bytes_ : bytes_) += bytes;
}

void WeightLoader::begin_group(int sequence) {
  QWENVL_CHECK(!in_group_, "a weight group is open already");
  in_group_ = true;
  group_bytes_ = 0;
  if (backend_) backend_->begin_streamed_group(sequence);
}

int WeightLoader::end_group() {
  QWENVL_CHECK(in_group_, "no weight group is open");
  in_group_ = false;
  streamed_bytes_ += group_bytes_;
  largest_group_ = std::max(largest_group_, group_bytes_);
  return backend_ ? backend_->end_streamed_group() : -1;
}

Tensor WeightLoader::upload(const Tensor& host) {
  const DType dtype = in_place() ? host.dtype() : compute_;
  // A streamed weight is copied to the device for each use, so even an f32 backend copies it
  // into the group's host memory.
  if (in_group_) return upload_stacked({host}, dtype);
  if (!in_place()) count(host.numel(), dtype);
  if (!backend_) return host;
  Tensor out = backend_->upload_weight(host, dtype);
  report(host.nbytes());
  return out;
}

void WeightLoader::report(size_t bytes) {
  read_bytes_ += bytes;
  if (progress_) progress_(read_bytes_);
}

Tensor WeightLoader::upload_stacked(const std::vector<Tensor>& parts, DType dtype) {
  int64_t elements = 0;
  for (const Tensor& part : parts) elements += part.numel();
  count(elements, dtype);
  if (!backend_) return Tensor();
  Tensor out = in_group_ ? backend_->upload_streamed(parts, dtype)
                         : backend_->upload_weight_stacked(parts, dtype);
  size_t read = 0;
  for (const Tensor& part : parts) read += part.nbytes();
  report(read);
  return out;
}

Tensor WeightLoader::get(const std::string& name) { return upload(checkpoint_.get(name)); }

Tensor WeightLoader::reshaped(const std::string& name, Shape shape) {
  return upload(checkpoint_.get(name).view(shape));
}

namespace {

// `part` with its rows moved to ResidueFirst{rows}'s positions, zero rows in the gap, in its own
// dtype.
Tensor with_residue_first_rows(const Tensor& part) {
  const ResidueFirst layout{part.dim(0)};
  Shape shape = part.shape();
  shape[0] = layout.width();
  Tensor out = Tensor::empty(shape, part.dtype());
  const size_t row_bytes = size_t(part.numel() / part.dim(0)) * dtype_size(part.dtype());
  std::memset(out.data(), 0, size_t(out.numel()) * dtype_size(part.dtype()));
  for (int64_t r = 0; r < part.dim(0); ++r)
    std::memcpy(static_cast<char*>(out.data()) + size_t(layout.position(r)) * row_bytes,
                static_cast<const char*>(part.data()) + size_t(r) * row_bytes, row_bytes);
  return out;
}

}  // namespace

Tensor WeightLoader::stacked(const std::vector<std::string>& names, bool residue_first) {
  std::vector<Tensor> parts;
  bool one_dtype = true, padded = false;
  for (const std::string& name : names) {
    Tensor part = checkpoint_.get(name);
    if (residue_first && ResidueFirst{part.dim(0)}.width() != part.dim(0)) {
      part = with_residue_first_rows(part);
      padded = true;
    }
    parts.push_back(part);
    one_dtype = one_dtype && parts.back().dtype() == parts.front().dtype();
  }
  // Stacking copies on every backend; an in-place (f32) backend keeps the checkpoint's dtype.
  const DType dtype = !in_place() ? compute_ : one_dtype ? parts.front().dtype() : DType::F32;
  Tensor out = upload_stacked(parts, dtype);
  if (!backend_) return out;
  // The CPU's copy replaces the mapped pages it was read from: keep resident memory at one copy.
  if (in_place() && !padded)
    for (const Tensor& part : parts) checkpoint_.release_pages(part);
  return out;
}

Tensor WeightLoader::residue_first_columns(const std::string& name) {
  const Tensor& w = checkpoint_.get(name);
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const ResidueFirst layout{cols};
  if (layout.width() == cols) return get(name);
  Tensor out = Tensor::empty({rows, layout.width()}, w.dtype());
  const size_t element = dtype_size(w.dtype());
  std::memset(out.data(), 0, size_t(out.numel()) * element);
  // Two runs per row: the residue's columns, then the rest after the gap.
  const int64_t residue = layout.residue();
  for (int64_t r = 0; r < rows; ++r) {
    char* dst = static_cast<char*>(out.data()) + size_t(r * layout.width()) * element;
    const char* src = static_cast<const char*>(w.data()) + size_t(r * cols) * element;
    std::memcpy(dst, src, size_t(residue) * element);
    std::memcpy(dst + size_t(layout.position(residue)) * element, src + size_t(residue) * element,
                size_t(cols - residue) * element);
  }
  if (!in_place()) return upload(out);
  // The CPU computes from this host copy itself: count it, as a stacked weight is counted.
  return upload_stacked({out}, out.dtype());
}

}  // namespace qwenvl
