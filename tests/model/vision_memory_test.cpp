// VisionTower::workspace_bytes against what encode() really takes: an image of several chunks
// encodes in exactly that workspace and fails in a little less, whichever phase (patch
// embedding, blocks, merger) is the largest; and the 3B model's largest image needs well under
// 1 GiB.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "model/vision_tower.h"

namespace qwenvl {
namespace {

// Patches per window side in these configs (the real models' 112-pixel windows of 14-pixel
// patches): the 64x72-patch image below is 8x9 whole windows, so in chunks of kSeveralChunks
// rows its first chunk is exactly that many patches and its second the 512 left; in chunks of
// the default kChunkRows it is one chunk.
constexpr int kWindowPatches = 8;
constexpr VisionGrid kGrid{1, 64, 72};
constexpr int64_t kSeveralChunks = 4096;
static_assert(kGrid.h * kGrid.w > kSeveralChunks && kGrid.h * kGrid.w <= kChunkRows);
static_assert(kSeveralChunks % (kWindowPatches * kWindowPatches) == 0 &&
              kGrid.w % kWindowPatches == 0);

VisionConfig small_vision(int hidden, int intermediate, int patch_size, int in_channels,
                          int temporal_patch_size, int out_hidden) {
  VisionConfig c;
  c.depth = 2;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_heads = 2;
  c.in_channels = in_channels;
  c.patch_size = patch_size;
  c.temporal_patch_size = temporal_patch_size;
  c.window_size = kWindowPatches * patch_size;
  c.out_hidden_size = out_hidden;
  c.fullatt_block_indexes = {1};
  return c;
}

// Uniform values in [offset - scale, offset + scale], as a host f32 tensor: the CPU backend
// computes from host weights where they are.
Tensor random_tensor(Shape shape, float scale, float offset, std::mt19937& rng) {
  std::uniform_real_distribution<float> value(offset - scale, offset + scale);
  Tensor t = Tensor::empty(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = value(rng);
  return t;
}

// A linear layer's weight [out, in], scaled so activations stay near unit size.
Tensor random_linear(int64_t out, int64_t in, std::mt19937& rng) {
  return random_tensor({out, in}, 1.0f / std::sqrt(float(in)), 0.0f, rng);
}

VisionWeights random_weights(const VisionConfig& c, std::mt19937& rng) {
  const int64_t h = c.hidden_size, vi = vision_mlp_width(c), merged = 4 * h;
  const int64_t patch_dim =
      int64_t(c.in_channels) * c.temporal_patch_size * c.patch_size * c.patch_size;
  VisionWeights w;
  w.patch_embed = random_linear(h, patch_dim, rng);
  for (int b = 0; b < c.depth; ++b) {
    VisionBlockWeights bw;
    bw.norm1 = random_tensor({h}, 0.2f, 1.0f, rng);
    bw.norm2 = random_tensor({h}, 0.2f, 1.0f, rng);
    bw.qkv_w = random_linear(3 * h, h, rng);
    bw.qkv_b = random_tensor({3 * h}, 0.1f, 0.0f, rng);
    bw.proj_w = random_linear(h, h, rng);
    bw.proj_b = random_tensor({h}, 0.1f, 0.0f, rng);
    bw.gate_up_w = random_linear(2 * vi, h, rng);
    bw.gate_up_b = random_tensor({2 * vi}, 0.1f, 0.0f, rng);
    bw.down_w = random_linear(h, vi, rng);
    bw.down_b = random_tensor({h}, 0.1f, 0.0f, rng);
    w.blocks.push_back(std::move(bw));
  }
  w.merger_norm = random_tensor({h}, 0.2f, 1.0f, rng);
  w.merger_fc1 = random_linear(merged, merged, rng);
  w.merger_fc1_b = random_tensor({merged}, 0.1f, 0.0f, rng);
  w.merger_fc2 = random_linear(c.out_hidden_size, merged, rng);
  w.merger_fc2_b = random_tensor({int64_t(c.out_hidden_size)}, 0.1f, 0.0f, rng);
  return w;
}

// Encodes kGrid's random pixels in chunks of chunk_rows on a CPU backend whose workspace is
// `workspace` bytes; throws Error when the workspace runs out.
void encode_in(const VisionConfig& c, int64_t chunk_rows, size_t workspace) {
  std::mt19937 rng(5);
  auto backend = make_backend("cpu", DType::BF16, 2);
  const int64_t patches = kGrid.patches();
  const int64_t patch_dim =
      int64_t(c.in_channels) * c.temporal_patch_size * c.patch_size * c.patch_size;
  const Shape out_shape{patches / 4, int64_t(c.out_hidden_size)};
  const size_t out_bytes = size_t(out_shape.numel()) * dtype_size(backend->compute_dtype());
  backend->reserve(0, out_bytes + kAllocationAlignment, workspace);
  VisionTower tower(c, random_weights(c, rng), chunk_rows);
  const Tensor pixels = random_tensor({patches, patch_dim}, 1.0f, 0.0f, rng);
  Tensor out = backend->alloc_persistent(out_shape, backend->compute_dtype());
  tower.encode(*backend, pixels, kGrid, out);
}

// workspace_bytes holds exactly enough, and the activations it counts are all really taken: less
// the allowance for index tensors and alignment, the workspace runs out. The configs below are
// wide enough (hidden >= 80) that each per-row term of a chunk, 4096 rows of f32, outweighs that
// allowance: a term missing from workspace_bytes fails one of them.
void check_workspace_bound(const VisionConfig& c, int64_t chunk_rows = kSeveralChunks) {
  const int64_t patches = kGrid.patches();
  const size_t bound = VisionTower::workspace_bytes(c, patches, DType::F32, chunk_rows);
  // What workspace_bytes adds to the activations: 8 I32 per patch and a MiB.
  const size_t allowance = size_t(patches) * 8 * sizeof(int32_t) + (size_t(1) << 20);
  EXPECT_NO_THROW(encode_in(c, chunk_rows, bound));
  EXPECT_THROW(encode_in(c, chunk_rows, bound - allowance), Error);
}

TEST(VisionMemory, AttentionHalfLargest) {
  // 1x14x14 one-channel patches: a block's attention half (9·hidden per row) and every patch's
  // keys and values outweigh the MLP half, the embedding and the merger.
  check_workspace_bound(small_vision(128, 192, 14, 1, 1, 64));
}

TEST(VisionMemory, AttentionHalfLargestInOneChunk) {
  // The same in one chunk: the full-attention blocks take their keys from the chunk itself.
  check_workspace_bound(small_vision(128, 192, 14, 1, 1, 64), kChunkRows);
}

TEST(VisionMemory, MlpHalfLargest) {
  // A wide MLP: its half (2·hidden + 3·intermediate per row) outweighs the attention half.
  check_workspace_bound(small_vision(80, 320, 14, 1, 1, 64));
}

TEST(VisionMemory, PatchEmbeddingLargest) {
  // Large 3x2x16x16 patches (1536 values) and a tiny MLP: the embedding chunk wins.
  check_workspace_bound(small_vision(96, 8, 16, 3, 2, 32));
}

TEST(VisionMemory, MergerLargest) {
  // Tiny patches, a tiny MLP and a wide output (4096 per merged unit): the merger's chunk wins.
  check_workspace_bound(small_vision(80, 4, 2, 1, 1, 4096));
}

TEST(VisionMemory, LargestImageOf3BUnderAGibibyte) {
  // Qwen2.5-VL-3B's vision tower at the processor's default max_pixels (12845056 pixels: 16384
  // merged units), a 252x260-patch image, in bf16 as on the GPU.
  VisionConfig c;
  c.depth = 32;
  c.hidden_size = 1280;
  c.intermediate_size = 3420;
  c.num_heads = 16;
  c.out_hidden_size = 2048;
  c.fullatt_block_indexes = {7, 15, 23, 31};
  const int64_t patches = 252 * 260;
  const size_t bytes = VisionTower::workspace_bytes(c, patches, DType::BF16);
  EXPECT_LT(bytes, size_t(1) << 30) << bytes << " bytes for " << patches << " patches";
}

}  // namespace
}  // namespace qwenvl
