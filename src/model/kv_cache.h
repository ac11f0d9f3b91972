#pragma once
// Keys and values of every decoder layer for one sequence, in persistent memory of the backend
// that runs the layer: layer l holds k[l], v[l] of [capacity, kv_heads, head_dim] in that
// backend's compute dtype. Row i is the token at cache position
// i. `length` counts the rows written so far. (Lives in model/ because the decoder writes it; the
// runtime sizes and owns it.)
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace qwenvl {

struct KvCacheShape {
  int layers = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int64_t capacity = 0;  // tokens
  size_t bytes(DType dtype) const {
    return size_t(2) * size_t(layers) * size_t(capacity) * size_t(kv_heads) * size_t(head_dim) *
           dtype_size(dtype);
  }
};

class KvCache {
 public:
  KvCache() = default;
  // Allocates from the backend's persistent region (reserve() must have counted shape.bytes()).
  KvCache(Backend& backend, const KvCacheShape& shape);
  // Layer l on *layer_backends[l] (one entry per layer).
  KvCache(const std::vector<Backend*>& layer_backends, const KvCacheShape& shape);

  const KvCacheShape& shape() const { return shape_; }
  int64_t capacity() const { return shape_.capacity; }
  int64_t length() const { return length_; }
  void set_length(int64_t length);  // after writing rows; Error beyond capacity
  void clear() { length_ = 0; }
  Tensor& keys(int layer) { return k_[size_t(layer)]; }
  Tensor& values(int layer) { return v_[size_t(layer)]; }

 private:
  KvCacheShape shape_;
  std::vector<Tensor> k_, v_;
  int64_t length_ = 0;
};

}  // namespace qwenvl
