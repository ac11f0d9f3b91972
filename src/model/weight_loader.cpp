#include "model/weight_loader.h"

namespace qwenvl {

Tensor WeightLoader::upload(const Tensor& host) {
  const bool in_place = compute_ == DType::F32;
  const DType dtype = in_place ? host.dtype() : compute_;
  // Backends align every allocation to at most kAllocationAlignment bytes.
  if (!in_place)
    bytes_ += (size_t(host.numel()) * dtype_size(dtype) + kAllocationAlignment - 1) /
              kAllocationAlignment * kAllocationAlignment;
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

}  // namespace qwenvl
