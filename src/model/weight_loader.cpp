#include "model/weight_loader.h"

namespace qwenvl {

// Backends align every allocation to at most kAllocationAlignment bytes.
void WeightLoader::count(int64_t elements, DType dtype) {
  bytes_ += (size_t(elements) * dtype_size(dtype) + kAllocationAlignment - 1) /
            kAllocationAlignment * kAllocationAlignment;
}

Tensor WeightLoader::upload(const Tensor& host) {
  const bool in_place = compute_ == DType::F32;
  const DType dtype = in_place ? host.dtype() : compute_;
  if (!in_place) count(host.numel(), dtype);
  if (!backend_) return host;
  return backend_->upload_weight(host, dtype);
}

Tensor WeightLoader::get(const std::string& name) { return upload(checkpoint_.get(name)); }

Tensor WeightLoader::rows(const std::string& name, int64_t begin, int64_t count) {
  return upload(checkpoint_.get(name).rows(begin, count));
}

Tensor WeightLoader::reshaped(const std::string& name, Shape shape) {
  return upload(checkpoint_.get(name).view(shape));
}

Tensor WeightLoader::stacked(const std::vector<std::string>& names) {
  std::vector<Tensor> parts;
  int64_t elements = 0;
  bool one_dtype = true;
  for (const std::string& name : names) {
    parts.push_back(checkpoint_.get(name));
    elements += parts.back().numel();
    one_dtype = one_dtype && parts.back().dtype() == parts.front().dtype();
  }
  // Stacking copies on every backend; an in-place (f32) backend keeps the checkpoint's dtype.
  const bool in_place = compute_ == DType::F32;
  const DType dtype = !in_place ? compute_ : one_dtype ? parts.front().dtype() : DType::F32;
  count(elements, dtype);
  if (!backend_) return Tensor();
  Tensor out = backend_->upload_weight_stacked(parts, dtype);
  // The CPU's copy replaces the mapped pages it was read from: keep resident memory at one copy.
  if (in_place)
    for (const Tensor& part : parts) checkpoint_.release_pages(part);
  return out;
}

}  // namespace qwenvl
