#include "model/kv_cache.h"

#include "core/error.h"

namespace qwenvl {

KvCache::KvCache(Backend& backend, const KvCacheShape& shape)
    : KvCache(std::vector<Backend*>(size_t(shape.layers), &backend), shape) {}

KvCache::KvCache(const std::vector<Backend*>& layer_backends, const KvCacheShape& shape)
    : shape_(shape) {
  QWENVL_CHECK(int64_t(layer_backends.size()) == shape.layers, layer_backends.size(),
               " backends for ", shape.layers, " layers");
  const Shape per_layer{shape.capacity, shape.kv_heads, shape.head_dim};
  for (Backend* backend : layer_backends) {
    k_.push_back(backend->alloc_persistent(per_layer, backend->compute_dtype()));
    v_.push_back(backend->alloc_persistent(per_layer, backend->compute_dtype()));
  }
}

void KvCache::set_length(int64_t length) {
  if (length > shape_.capacity)
    fail("the sequence of ", length, " tokens does not fit the context of ", shape_.capacity,
         " tokens");
  length_ = length;
}

}  // namespace qwenvl
