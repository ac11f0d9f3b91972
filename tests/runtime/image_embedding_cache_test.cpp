// ImageEmbeddingCache: images keyed by their pixel values and grid, least recently used entries
// evicted within the byte budget.
#include "runtime/image_embedding_cache.h"

#include <gtest/gtest.h>

#include "model/model_test_util.h"

namespace qwenvl {
namespace {

Tensor embeddings(int64_t rows, float value) {
  Tensor t = Tensor::empty({rows, 4}, DType::F32);
  std::fill_n(t.data<float>(), t.numel(), value);
  return t;
}

TEST(ImageEmbeddingCache, KeysFollowPixelsAndGrid) {
  const ImageInput image = test::random_image(4, 8, 1);
  ImageInput same{Tensor::empty(image.pixel_values.shape(), DType::F32), image.grid};
  std::copy_n(image.pixel_values.data<float>(), image.pixel_values.numel(),
              same.pixel_values.data<float>());
  EXPECT_EQ(image_hash(image), image_hash(same));
  same.pixel_values.data<float>()[100] += 1e-6f;
  EXPECT_NE(image_hash(image), image_hash(same)) << "one pixel value";
  ImageInput transposed = test::random_image(8, 4, 1);
  EXPECT_NE(image_hash(image), image_hash(transposed));
}

TEST(ImageEmbeddingCache, EvictsTheLeastRecentlyUsedWithinItsBudget) {
  // Entries of 2 x 4 floats: 32 bytes; a budget of 100 holds three.
  ImageEmbeddingCache cache(100);
  const ContentHash a{1, 1}, b{2, 2}, c{3, 3}, d{4, 4};
  cache.insert(a, embeddings(2, 1));
  cache.insert(b, embeddings(2, 2));
  cache.insert(c, embeddings(2, 3));
  EXPECT_EQ(cache.bytes(), 96);
  ASSERT_NE(cache.find(a), nullptr);  // a is now the most recent; b the least
  cache.insert(d, embeddings(2, 4));
  EXPECT_EQ(cache.entries(), 3u);
  EXPECT_EQ(cache.find(b), nullptr);
  ASSERT_NE(cache.find(a), nullptr);
  EXPECT_EQ(cache.find(a)->data<float>()[0], 1.0f);
  EXPECT_EQ(cache.hits(), 3);
  EXPECT_EQ(cache.misses(), 1);
  cache.insert(ContentHash{5, 5}, embeddings(4, 5));  // 64 bytes: two go
  EXPECT_EQ(cache.entries(), 2u);
  cache.insert(ContentHash{6, 6}, embeddings(8, 6));  // over the whole budget: not kept
  EXPECT_EQ(cache.find(ContentHash{6, 6}), nullptr);
  EXPECT_LE(cache.bytes(), 100);
}

}  // namespace
}  // namespace qwenvl
