// The model on the CPU backend against NaiveQwen (a literal float transcription of transformers)
// on tiny random checkpoints: vision output per image and last-position logits.
#include "naive_reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/qwen2_5_vl.h"
#include "model_test_util.h"
#include "synthetic_checkpoint.h"

namespace qwenvl {
namespace {

using test::host_copy;
using test::random_image;
using test::rel_l2;

using test::kSynthImagePad;
using test::kSynthVisionEnd;
using test::kSynthVisionStart;

void check_against_naive(bool tied, const std::vector<ImageInput>& images,
                         int64_t vision_chunk_rows = kChunkRows) {
  const std::string dir =
      test::write_synthetic_checkpoint(tied ? "naive_tied" : "naive_untied", tied, tied ? 7u : 8u);
  const ModelConfig config = load_model_config(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir, config);
  test::NaiveQwen naive(config, checkpoint);

  std::vector<int32_t> ids{11, 23, 5};
  for (const auto& image : images) {
    ids.push_back(kSynthVisionStart);
    for (int64_t i = 0; i < image.grid.patches() / 4; ++i) ids.push_back(kSynthImagePad);
    ids.push_back(kSynthVisionEnd);
    ids.push_back(31);
  }
  for (int32_t id : {200, 3, 77, 150}) ids.push_back(id);

  auto backend = make_backend("cpu", DType::BF16, 2);
  ModelLimits limits;
  limits.max_context = int64_t(ids.size()) + 4;
  limits.prefill_chunk = 16;  // several chunks, image rows split across them
  limits.vision_chunk_rows = vision_chunk_rows;
  for (const auto& image : images) {
    limits.max_image_patches = std::max(limits.max_image_patches, image.grid.patches());
    limits.max_image_tokens += image.grid.patches() / 4;
  }
  Qwen25VL model(config, checkpoint, *backend, limits);
  const size_t mark = backend->workspace_mark();
  Tensor embeds;
  test::Mat naive_embeds;
  if (!images.empty()) {
    embeds = model.encode_images(images);
    Tensor host = Tensor::empty(embeds.shape(), DType::F32);
    backend->copy_to_host(embeds, host);
    backend->synchronize();
    int64_t row = 0;
    for (const auto& image : images) {
      const test::Mat px(image.pixel_values.data<float>(),
                         image.pixel_values.data<float>() + image.pixel_values.numel());
      const test::Mat expected = naive.vision(px, image.grid.t, image.grid.h, image.grid.w);
      const int64_t count = int64_t(expected.size()) / config.vision.out_hidden_size;
      const std::vector<float> ours(
          host.data<float>() + row * config.vision.out_hidden_size,
          host.data<float>() + (row + count) * config.vision.out_hidden_size);
      EXPECT_LT(rel_l2(ours, expected), 1e-5)
          << "image grid " << image.grid.h << "x" << image.grid.w;
      naive_embeds.insert(naive_embeds.end(), expected.begin(), expected.end());
      row += count;
    }
  }
  RopeIndexInputs in;
  for (const auto& image : images) in.image_grids.push_back(image.grid);
  in.tokens = {config.image_token_id, config.video_token_id};
  const MropePositions positions = rope_index(ids, in);
  model.prefill(ids, positions, images.empty() ? nullptr : &embeds);
  backend->workspace_release(mark);
  Tensor logits = Tensor::empty(model.logits().shape(), DType::F32);
  backend->copy_to_host(model.logits(), logits);
  backend->synchronize();
  const std::vector<float> ours(logits.data<float>(), logits.data<float>() + logits.numel());
  EXPECT_LT(rel_l2(ours, naive.text_logits(ids, positions.rows, naive_embeds)), 1e-5);
}

TEST(NaiveReference, TextOnlyTied) { check_against_naive(true, {}); }

TEST(NaiveReference, ImagesWithWindowsUntied) {
  // 10x6 merged units: 3x2 windows of 4x4 units, partial at the edges; then an 8x8-patch image
  // whose 4x4 units exactly fill one window (transformers' extra padding window collapses).
  check_against_naive(false, {random_image(20, 12, 5), random_image(8, 8, 6)});
}

TEST(NaiveReference, ImagesInChunksOfWindowsUntied) {
  // A vision chunk of 16 patches, less than a window (8x8 patches): each chunk is one window
  // (partial at the edges), and the full-attention block computes every key and value first.
  check_against_naive(false, {random_image(20, 12, 5), random_image(8, 8, 6)}, 16);
}

TEST(NaiveReference, ImageAboveTheChunkTied) {
  // More patches than the vision chunk: the blocks run chunk by chunk, the last one partial.
  static_assert(68 * 68 > 4096);
  check_against_naive(true, {random_image(68, 68, 13)}, 4096);
}

TEST(NaiveReference, WideImageTied) { check_against_naive(true, {random_image(4, 36, 9)}); }

TEST(NaiveReference, TwoFrameVisionInput) {
  // t = 2 temporal patches (a video's frames): windows per frame, full attention per frame.
  const std::string dir = test::write_synthetic_checkpoint("naive_frames", true, 11u);
  const ModelConfig config = load_model_config(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir, config);
  ImageInput frames = random_image(2 * 12, 20, 12);
  frames.grid = {2, 12, 20};
  auto backend = make_backend("cpu", DType::BF16, 2);
  ModelLimits limits;
  limits.max_context = 8;
  limits.max_image_patches = frames.grid.patches();
  limits.max_image_tokens = frames.grid.patches() / 4;
  Qwen25VL model(config, checkpoint, *backend, limits);
  Tensor out = model.encode_images({frames});
  Tensor host = Tensor::empty(out.shape(), DType::F32);
  backend->copy_to_host(out, host);
  backend->synchronize();
  const std::vector<float> ours(host.data<float>(), host.data<float>() + host.numel());
  const test::Mat px(frames.pixel_values.data<float>(),
                     frames.pixel_values.data<float>() + frames.pixel_values.numel());
  EXPECT_LT(rel_l2(ours, test::NaiveQwen(config, checkpoint).vision(px, 2, 12, 20)), 1e-5);
}

}  // namespace
}  // namespace qwenvl
