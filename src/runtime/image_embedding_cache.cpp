#include "runtime/image_embedding_cache.h"

#include "core/error.h"

namespace qwenvl {

ContentHash image_hash(const ImageInput& image) {
  ContentHasher hasher;
  hasher.add(uint64_t(image.grid.t)), hasher.add(uint64_t(image.grid.h));
  hasher.add(uint64_t(image.grid.w));
  hasher.add(image.pixel_values.data(), image.pixel_values.nbytes());
  return hasher.finish();
}

ImageEmbeddingCache::ImageEmbeddingCache(int64_t byte_budget) : budget_(byte_budget) {}

const Tensor* ImageEmbeddingCache::find(const ContentHash& key) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return nullptr;
  }
  ++hits_;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->second;
}

void ImageEmbeddingCache::insert(const ContentHash& key, Tensor embeddings) {
  const int64_t size = int64_t(embeddings.nbytes());
  if (size > budget_ || index_.count(key)) return;
  while (bytes_ + size > budget_) {
    bytes_ -= int64_t(lru_.back().second.nbytes());
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(key, std::move(embeddings));
  index_[key] = lru_.begin();
  bytes_ += size;
}

Tensor encode_images_cached(Qwen25VL& model, const std::vector<ImageInput>& images,
                            const std::vector<ContentHash>& hashes, ImageEmbeddingCache& cache) {
  QWENVL_CHECK(hashes.size() == images.size(), hashes.size(), " hashes for ", images.size(),
               " images");
  const ModelConfig& config = model.config();
  int64_t tokens = 0;
  for (const ImageInput& image : images) tokens += embedding_rows(config.vision, image.grid);
  Backend& backend = model.image_backend();
  Tensor out = backend.alloc({tokens, int64_t(config.text.hidden_size)}, backend.compute_dtype());
  int64_t row = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageInput& image = images[i];
    const int64_t count = embedding_rows(config.vision, image.grid);
    Tensor rows = out.rows(row, count);
    row += count;
    const ContentHash& key = hashes[i];
    if (const Tensor* kept = cache.find(key)) {
      backend.copy_from_host(*kept, rows);
      continue;
    }
    const std::vector<size_t> marks = model.workspace_marks();
    const Tensor encoded = model.encode_images({image});
    Tensor host = Tensor::empty(encoded.shape(), backend.compute_dtype());
    backend.copy_to_host(encoded, host);
    backend.synchronize();
    model.release_workspaces(marks);
    backend.copy_from_host(host, rows);
    cache.insert(key, std::move(host));
  }
  return out;
}

}  // namespace qwenvl
