// The model against itself on a tiny random checkpoint: chunked prefill equals one pass, a decode
// step equals prefilling the longer prompt (KV cache and rope_delta), images in a batch equal
// images alone. Uses the CPU backend.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "core/error.h"
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

struct Synth {
  std::string dir;
  ModelConfig config;
  Checkpoint checkpoint;
};

Synth& synth() {
  static Synth s = [] {
    std::string dir = test::write_synthetic_checkpoint("consistency", false, 1234);
    ModelConfig config = load_model_config(dir);
    Checkpoint checkpoint = Checkpoint::open(dir, config);
    return Synth{dir, config, std::move(checkpoint)};
  }();
  return s;
}

// A prompt with one image of `units` merged tokens between some text.
std::vector<int32_t> prompt_with_image(int64_t units) {
  std::vector<int32_t> ids{5, 17, 42, kSynthVisionStart};
  for (int64_t i = 0; i < units; ++i) ids.push_back(kSynthImagePad);
  for (int32_t id : {kSynthVisionEnd, 7, 99, 3, 120, 64}) ids.push_back(id);
  return ids;
}

MropePositions positions_for(const ModelConfig& config, const std::vector<int32_t>& ids,
                             const std::vector<ImageInput>& images) {
  RopeIndexInputs in;
  for (const auto& image : images) in.image_grids.push_back(image.grid);
  in.tokens = {config.image_token_id, config.video_token_id};
  return rope_index(ids, in);
}

// Prefill of `ids` with `images`; returns the last position's logits.
std::vector<float> prefill_logits(Backend& backend, int64_t chunk, const std::vector<int32_t>& ids,
                                  const std::vector<ImageInput>& images) {
  ModelLimits limits;
  limits.max_context = 64;
  limits.prefill_chunk = chunk;
  for (const auto& image : images) {
    limits.max_image_patches = std::max(limits.max_image_patches, image.grid.patches());
    limits.max_image_tokens += image.grid.patches() / 4;
  }
  Qwen25VL model(synth().config, synth().checkpoint, backend, limits);
  const size_t mark = backend.workspace_mark();
  Tensor embeds;
  if (!images.empty()) embeds = model.encode_images(images);
  model.prefill(ids, positions_for(synth().config, ids, images),
                images.empty() ? nullptr : &embeds);
  backend.workspace_release(mark);
  return host_copy(backend, model.logits());
}

TEST(ModelConsistency, ChunkedPrefillEqualsOnePass) {
  auto backend = make_backend("cpu", DType::BF16, 2);
  const std::vector<ImageInput> images{random_image(4, 8, 1)};  // 2x4 units
  const std::vector<int32_t> ids = prompt_with_image(8);
  const std::vector<float> whole = prefill_logits(*backend, 1024, ids, images);
  for (int64_t chunk : {1, 3, 5}) {
    auto backend2 = make_backend("cpu", DType::BF16, 2);
    EXPECT_LT(rel_l2(prefill_logits(*backend2, chunk, ids, images), whole), 1e-5)
        << "chunk " << chunk;
  }
}

TEST(ModelConsistency, DecodeStepEqualsLongerPrefill) {
  const std::vector<ImageInput> images{random_image(4, 6, 2)};  // 2x3 units: rope_delta != 0
  std::vector<int32_t> ids = prompt_with_image(6);
  std::vector<int32_t> longer = ids;
  longer.push_back(77);
  auto backend = make_backend("cpu", DType::BF16, 2);
  const std::vector<float> expected = prefill_logits(*backend, 1024, longer, images);

  auto backend2 = make_backend("cpu", DType::BF16, 2);
  ModelLimits limits;
  limits.max_context = 64;
  limits.max_image_patches = 24;
  limits.max_image_tokens = 6;
  Qwen25VL model(synth().config, synth().checkpoint, *backend2, limits);
  const size_t mark = backend2->workspace_mark();
  Tensor embeds = model.encode_images(images);
  const MropePositions positions = positions_for(synth().config, ids, images);
  ASSERT_NE(positions.rope_delta, 0);
  model.prefill(ids, positions, &embeds);
  backend2->workspace_release(mark);
  model.decode_step(77);
  EXPECT_LT(rel_l2(host_copy(*backend2, model.logits()), expected), 1e-5);
}

TEST(ModelConsistency, WarmUpLeavesNoTrace) {
  // Warm-up runs a throwaway image, prompt and decode step; a request after it must see exactly
  // what a fresh model sees, decode steps included.
  const std::vector<ImageInput> images{random_image(4, 6, 5)};
  const std::vector<int32_t> ids = prompt_with_image(6);
  std::vector<std::vector<float>> runs;
  for (bool warm : {false, true}) {
    auto backend = make_backend("cpu", DType::BF16, 2);
    ModelLimits limits;
    limits.max_context = 64;
    limits.max_image_patches = 24;
    limits.max_image_tokens = 6;
    Qwen25VL model(synth().config, synth().checkpoint, *backend, limits);
    if (warm) model.warm_up();
    const size_t mark = backend->workspace_mark();
    Tensor embeds = model.encode_images(images);
    model.prefill(ids, positions_for(synth().config, ids, images), &embeds);
    backend->workspace_release(mark);
    EXPECT_EQ(backend->workspace_mark(), mark);
    model.decode_step(91);
    runs.push_back(host_copy(*backend, model.logits()));
  }
  EXPECT_LT(rel_l2(runs[1], runs[0]), 1e-6);
}

TEST(ModelConsistency, ImagesEncodeIndependently) {
  // Each image's attention stays within itself, so batching two images changes nothing.
  auto backend = make_backend("cpu", DType::BF16, 2);
  const ImageInput a = random_image(4, 8, 3), b = random_image(20, 12, 4);
  ModelLimits limits;
  limits.max_context = 16;
  limits.max_image_patches = 240;
  limits.max_image_tokens = 68;
  Qwen25VL model(synth().config, synth().checkpoint, *backend, limits);
  const size_t mark = backend->workspace_mark();
  std::vector<float> both = host_copy(*backend, model.encode_images({a, b}));
  backend->workspace_release(mark);
  std::vector<float> only_b = host_copy(*backend, model.encode_images({b}));
  ASSERT_EQ(both.size(), (8u + 60u) * 32u);
  std::vector<float> tail(both.begin() + 8 * 32, both.end());
  EXPECT_LT(rel_l2(tail, only_b), 1e-6);
}

TEST(ModelConsistency, PadCountMismatchIsAnError) {
  auto backend = make_backend("cpu", DType::BF16, 2);
  ModelLimits limits;
  limits.max_context = 64;
  Qwen25VL model(synth().config, synth().checkpoint, *backend, limits);
  std::vector<int32_t> ids = prompt_with_image(4);
  MropePositions positions;
  positions.length = int64_t(ids.size());
  positions.rows.assign(size_t(3 * positions.length), 0);
  EXPECT_THROW(model.prefill(ids, positions, nullptr), Error);
}

}  // namespace
}  // namespace qwenvl
