#include "model/device_indices.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace qwenvl {

Tensor upload_indices(Backend& backend, const std::vector<int32_t>& values, Shape shape) {
  if (shape.rank() == 0) shape = Shape{int64_t(values.size())};
  QWENVL_CHECK(shape.numel() == int64_t(values.size()), "indices ", shape.str());
  Tensor host = Tensor::empty(shape, DType::I32);
  if (!values.empty()) std::memcpy(host.data(), values.data(), values.size() * sizeof(int32_t));
  Tensor device = backend.alloc(shape, DType::I32);
  backend.copy_from_host(host, device);
  return device;
}

namespace {
int max_gap(const std::vector<int32_t>& cu) {
  int gap = 0;
  for (size_t i = 1; i < cu.size(); ++i) gap = std::max(gap, cu[i] - cu[i - 1]);
  return gap;
}
}  // namespace

AttentionSegments make_segments(Backend& backend, const std::vector<int32_t>& cu_q,
                                const std::vector<int32_t>& cu_k, bool causal, float scale) {
  QWENVL_CHECK(cu_q.size() == cu_k.size() && cu_q.size() >= 2, "segments");
  AttentionSegments s;
  s.cu_q = upload_indices(backend, cu_q);
  s.cu_k = upload_indices(backend, cu_k);
  s.segments = int(cu_q.size() - 1);
  s.max_q = max_gap(cu_q);
  s.max_k = max_gap(cu_k);
  while (size_t(s.single_query_segments) + 1 < cu_q.size() &&
         cu_q[size_t(s.single_query_segments) + 1] - cu_q[size_t(s.single_query_segments)] == 1) {
    const size_t segment = size_t(s.single_query_segments++);
    s.single_query_max_k = std::max(s.single_query_max_k, cu_k[segment + 1] - cu_k[segment]);
  }
  s.causal = causal;
  s.scale = scale;
  return s;
}

}  // namespace qwenvl
