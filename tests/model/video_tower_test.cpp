// Videos through the vision tower and the prefill on a tiny random checkpoint (CPU backend): a
// video is an ImageInput whose grid has t > 1. The vision tower's rotary positions are 2-D and
// its attention never crosses frames (full-attention blocks attend within one temporal patch,
// windows are cut per temporal patch), so each temporal patch's rows must equal that patch
// encoded alone as an image. transformers' exact reference needs the GPU machine; this pins down
// the layout and the frame independence.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "model/qwen2_5_vl.h"
#include "model_test_util.h"
#include "synthetic_checkpoint.h"

namespace qwenvl {
namespace {

using test::host_copy;
using test::random_image;
using test::rel_l2;

struct Synth {
  ModelConfig config;
  Checkpoint checkpoint;
};

Synth& synth() {
  static Synth s = [] {
    std::string dir = test::write_synthetic_checkpoint("video", false, 4321);
    ModelConfig config = load_model_config(dir);
    Checkpoint checkpoint = Checkpoint::open(dir, config);
    return Synth{std::move(config), std::move(checkpoint)};
  }();
  return s;
}

// A video whose temporal patches are the pixel values of `patches` (all of one grid), in order.
ImageInput video_of(const std::vector<ImageInput>& patches) {
  ImageInput video;
  const int64_t frames = int64_t(patches.size()), rows = patches[0].pixel_values.dim(0);
  video.grid = {frames, patches[0].grid.h, patches[0].grid.w};
  video.pixel_values = Tensor::empty({frames * rows, 1176}, DType::F32);
  for (int64_t t = 0; t < frames; ++t)
    std::memcpy(video.pixel_values.data<float>() + t * rows * 1176,
                patches[size_t(t)].pixel_values.data(), size_t(rows) * 1176 * sizeof(float));
  return video;
}

ModelLimits limits_for(int64_t patches) {
  ModelLimits limits;
  limits.max_context = 128;
  limits.max_image_patches = patches;
  limits.max_image_tokens = patches / 4;
  return limits;
}

TEST(VideoTower, EachTemporalPatchEqualsItsFrameAlone) {
  auto backend = make_backend("cpu", DType::BF16, 2);
  // 8x8 patches: several windows of the tiny tower per temporal patch
  const std::vector<ImageInput> frames = {random_image(8, 8, 11), random_image(8, 8, 12),
                                          random_image(8, 8, 11)};
  const ImageInput video = video_of(frames);
  Qwen25VL model(synth().config, synth().checkpoint, *backend, limits_for(3 * 64));
  const size_t mark = backend->workspace_mark();
  const std::vector<float> rows = host_copy(*backend, model.encode_images({video}));
  backend->workspace_release(mark);
  const std::vector<float> again = host_copy(*backend, model.encode_images({video}));
  backend->workspace_release(mark);
  const size_t hidden = size_t(synth().config.text.hidden_size), per_frame = 16 * hidden;
  ASSERT_EQ(rows.size(), 3 * per_frame);
  EXPECT_EQ(rows, again);  // deterministic
  for (size_t t = 0; t < 3; ++t) {
    const std::vector<float> alone = host_copy(*backend, model.encode_images({frames[t]}));
    backend->workspace_release(mark);
    const std::vector<float> part(rows.begin() + long(t * per_frame),
                                  rows.begin() + long((t + 1) * per_frame));
    EXPECT_LT(rel_l2(part, alone), 1e-6) << "temporal patch " << t;
  }
  // the two different frames do differ, so a mix-up would show
  EXPECT_GT(rel_l2(std::vector<float>(rows.begin(), rows.begin() + long(per_frame)),
                   std::vector<float>(rows.begin() + long(per_frame),
                                      rows.begin() + long(2 * per_frame))),
            1e-3);
}

// A video longer than the workspace was planned for runs in pieces of whole temporal patches;
// its rows are those of one pass, bit for bit.
std::vector<float> encoded_with_plan(Backend& backend, const ImageInput& video,
                                     int64_t max_image_patches, int64_t chunk_rows) {
  ModelLimits limits = limits_for(max_image_patches);
  limits.max_image_tokens = video.grid.patches() / 4;
  limits.vision_chunk_rows = chunk_rows;
  Qwen25VL model(synth().config, synth().checkpoint, backend, limits);
  const size_t mark = backend.workspace_mark();
  std::vector<float> rows = host_copy(backend, model.encode_images({video}));
  backend.workspace_release(mark);
  return rows;
}

TEST(VideoTower, PiecesOfTemporalPatchesEqualOnePass) {
  auto backend = make_backend("cpu", DType::BF16, 2);
  // 5 temporal patches of 8x8 patches (several windows each), all different.
  std::vector<ImageInput> frames;
  for (int t = 0; t < 5; ++t) frames.push_back(random_image(8, 8, 100 + t));
  const ImageInput video = video_of(frames);
  const int64_t per_t = 64;
  // Chunks of one temporal patch in every run, so that each product sees the same rows: the
  // whole video in one pass (its full-attention blocks then keep every patch's keys), and pieces
  // of 1, 2 and 3 temporal patches (the last piece shorter).
  const std::vector<float> whole = encoded_with_plan(*backend, video, 5 * per_t, per_t);
  for (int64_t piece : {1, 2, 3}) {
    SCOPED_TRACE(piece);
    EXPECT_EQ(encoded_with_plan(*backend, video, piece * per_t, per_t), whole);
    // A planned size between whole temporal patches rounds down to them.
    EXPECT_EQ(encoded_with_plan(*backend, video, piece * per_t + 5, per_t), whole);
  }
  // With the default chunk (every piece and the whole video one chunk each) the products run
  // over more rows at once; the values agree to float rounding.
  const std::vector<float> one_chunk = encoded_with_plan(*backend, video, 5 * per_t, kChunkRows);
  EXPECT_LT(rel_l2(encoded_with_plan(*backend, video, 2 * per_t, kChunkRows), one_chunk), 1e-6);
}

TEST(VideoTower, ATemporalPatchLargerThanThePlanIsAnError) {
  auto backend = make_backend("cpu", DType::BF16, 2);
  const ImageInput video = video_of({random_image(8, 8, 1), random_image(8, 8, 2)});
  EXPECT_THROW(encoded_with_plan(*backend, video, 63, kChunkRows), Error);
}

TEST(VideoTower, PiecePatchesAreWholeTemporalPatchesWithinAChunk) {
  EXPECT_EQ(VisionTower::piece_patches({30, 40, 72}, 8192), 2 * 40 * 72);  // 720p at 2 fps
  EXPECT_EQ(VisionTower::piece_patches({4, 8, 8}, 8192), 4 * 64);          // the whole video
  EXPECT_EQ(VisionTower::piece_patches({3, 100, 100}, 8192), 100 * 100);   // one, over a chunk
  EXPECT_EQ(VisionTower::piece_patches({1, 100, 100}, 8192), 100 * 100);
}

TEST(VideoTower, PrefillPlacesVideoRowsAtVideoPads) {
  auto backend = make_backend("cpu", DType::BF16, 2);
  const ModelConfig& config = synth().config;
  // 2 temporal patches of 4 tokens
  const ImageInput video = video_of({random_image(4, 4, 5), random_image(4, 4, 6)});
  std::vector<int32_t> ids{5, 17, test::kSynthVisionStart};
  for (int i = 0; i < 8; ++i) ids.push_back(config.video_token_id);
  for (int32_t id : {test::kSynthVisionEnd, 7, 99}) ids.push_back(id);
  RopeIndexInputs in;
  in.video_grids = {video.grid};
  in.seconds_per_video_grid = {1.0f};
  in.tokens = {config.image_token_id, config.video_token_id};
  const MropePositions positions = rope_index(ids, in);
  EXPECT_EQ(positions.at(0, 3 + 4), 3 + 2);  // second temporal patch: 1 s · 2 tokens/s

  Qwen25VL model(config, synth().checkpoint, *backend, limits_for(32));
  auto logits = [&]() {
    const size_t mark = backend->workspace_mark();
    Tensor embeds = model.encode_images({video});
    model.prefill(ids, positions, &embeds);
    backend->workspace_release(mark);
    return host_copy(*backend, model.logits());
  };
  const std::vector<float> first = logits();
  EXPECT_EQ(first, logits());
  // Without the embeddings the video pads are a mismatch: one Error, not a crash.
  EXPECT_THROW(model.prefill(ids, positions, nullptr), Error);
}

}  // namespace
}  // namespace qwenvl
