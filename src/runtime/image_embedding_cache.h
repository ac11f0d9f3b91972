#pragma once
// Image embeddings by content: a request whose image (or video) was encoded before, a multi-turn
// chat about one photo or many users sending the same one, copies the embeddings instead of
// running the vision tower again. An entry's key hashes the pixel values and the grid
// (runtime/content_hash.h); its value is a host copy in the tower's compute dtype, uploaded bit
// for bit.
// Entries are evicted least recently used within a byte budget. Used by one thread (the batch
// runner's).
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "model/qwen2_5_vl.h"
#include "runtime/content_hash.h"

namespace qwenvl {

// The content hash of an image or video: its pixel values and grid.
ContentHash image_hash(const ImageInput& image);

class ImageEmbeddingCache {
 public:
  explicit ImageEmbeddingCache(int64_t byte_budget);

  // The embeddings kept for `key` (now the most recently used), or null.
  const Tensor* find(const ContentHash& key);
  // Keeps `embeddings` (host) under `key`, evicting the least recently used entries to stay
  // within the budget; one larger than the whole budget is not kept.
  void insert(const ContentHash& key, Tensor embeddings);

  int64_t budget() const { return budget_; }
  int64_t bytes() const { return bytes_; }
  size_t entries() const { return lru_.size(); }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }

 private:
  using Entry = std::pair<ContentHash, Tensor>;
  int64_t budget_;
  int64_t bytes_ = 0;
  int64_t hits_ = 0, misses_ = 0;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<ContentHash, std::list<Entry>::iterator, ContentHashOf> index_;
};

// model.encode_images(images) through `cache` (hashes[i]: image_hash(images[i])): images it
// holds are uploaded, the others encoded one by one and kept. The result lies in
// image_backend()'s workspace, as encode_images leaves it.
Tensor encode_images_cached(Qwen25VL& model, const std::vector<ImageInput>& images,
                            const std::vector<ContentHash>& hashes, ImageEmbeddingCache& cache);

}  // namespace qwenvl
