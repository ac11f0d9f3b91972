#include "model/vision_tower.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/device_indices.h"
#include "model/rope.h"

namespace qwenvl {

// Qwen2_5_VLVisionBlock and Qwen2_5_VLPatchMerger hard-code this epsilon.
constexpr float kVisionNormEps = 1e-6f;

VisionWeights load_vision_weights(const VisionConfig& c, WeightLoader& loader) {
  VisionWeights w;
  const int64_t h = c.hidden_size;
  const int64_t patch_dim =
      int64_t(c.in_channels) * c.temporal_patch_size * c.patch_size * c.patch_size;
  w.patch_embed = loader.reshaped("visual.patch_embed.proj.weight", {h, patch_dim});
  for (int b = 0; b < c.depth; ++b) {
    const std::string p = cat("visual.blocks.", b, ".");
    VisionBlockWeights bw;
    bw.norm1 = loader.get(p + "norm1.weight");
    bw.norm2 = loader.get(p + "norm2.weight");
    // attn.qkv's output is (3, heads, head_dim): its row blocks are q, k and v.
    bw.q_w = loader.rows(p + "attn.qkv.weight", 0, h);
    bw.k_w = loader.rows(p + "attn.qkv.weight", h, h);
    bw.v_w = loader.rows(p + "attn.qkv.weight", 2 * h, h);
    bw.q_b = loader.rows(p + "attn.qkv.bias", 0, h);
    bw.k_b = loader.rows(p + "attn.qkv.bias", h, h);
    bw.v_b = loader.rows(p + "attn.qkv.bias", 2 * h, h);
    bw.proj_w = loader.get(p + "attn.proj.weight");
    bw.proj_b = loader.get(p + "attn.proj.bias");
    bw.gate_w = loader.get(p + "mlp.gate_proj.weight");
    bw.gate_b = loader.get(p + "mlp.gate_proj.bias");
    bw.up_w = loader.get(p + "mlp.up_proj.weight");
    bw.up_b = loader.get(p + "mlp.up_proj.bias");
    bw.down_w = loader.get(p + "mlp.down_proj.weight");
    bw.down_b = loader.get(p + "mlp.down_proj.bias");
    w.blocks.push_back(std::move(bw));
  }
  w.merger_norm = loader.get("visual.merger.ln_q.weight");
  w.merger_fc1 = loader.get("visual.merger.mlp.0.weight");
  w.merger_fc1_b = loader.get("visual.merger.mlp.0.bias");
  w.merger_fc2 = loader.get("visual.merger.mlp.2.weight");
  w.merger_fc2_b = loader.get("visual.merger.mlp.2.bias");
  return w;
}

VisionTower::VisionTower(const VisionConfig& config, VisionWeights weights)
    : config_(config), weights_(std::move(weights)) {
  if (config.hidden_act != "silu")
    fail("vision_config.hidden_act '", config.hidden_act,
         "' is not supported (Qwen2.5-VL uses silu)");
  if (config.hidden_size % config.num_heads != 0)
    fail("vision_config.hidden_size ", config.hidden_size, " is not a multiple of num_heads ",
         config.num_heads);
  head_dim_ = config.hidden_size / config.num_heads;
  rope_ = vision_rope_spec(head_dim_);
}

size_t VisionTower::workspace_bytes(const VisionConfig& c, int64_t patches, DType dtype) {
  const int64_t patch_dim =
      int64_t(c.in_channels) * c.temporal_patch_size * c.patch_size * c.patch_size;
  const int64_t h = c.hidden_size, vi = c.intermediate_size;
  // Live at the widest point of a block, its attention: x, normed, q, k, v, attention out and
  // delta; the MLP then runs over at most kMlpRows rows at a time (gate and up). Before the
  // blocks, x plus the pixels and their embedding; after them, the merger's three tensors.
  const int64_t mlp_rows = std::min<int64_t>(patches, kMlpRows);
  const int64_t widest = std::max({7 * h, h + patch_dim + h, 3 * h + c.out_hidden_size});
  const int64_t elements = patches * widest + mlp_rows * 2 * vi;
  return size_t(elements) * dtype_size(dtype) + size_t(patches) * 4 * sizeof(int32_t) +
         (size_t(1) << 20);
}

void VisionTower::encode(Backend& backend, const Tensor& pixel_values, const VisionGrid& grid,
                         Tensor& out) {
  const int64_t patches = grid.patches();
  const int merge = config_.spatial_merge_size;
  const int64_t unit = int64_t(merge) * merge;
  const int64_t h = config_.hidden_size;
  const DType dt = backend.compute_dtype();
  if (pixel_values.dim(0) != patches || pixel_values.dim(1) != weights_.patch_embed.dim(1))
    fail("pixel_values ", pixel_values.shape().str(), " do not match the grid (", grid.t, ", ",
         grid.h, ", ", grid.w, ") of this model's patches");
  QWENVL_CHECK(out.dim(0) == patches / unit && out.dim(1) == config_.out_hidden_size, "out ",
               out.shape().str());
  const size_t mark = backend.workspace_mark();

  // Host-side geometry: window order, boundaries, positions in window order.
  const std::vector<VisionGrid> grids{grid};
  const VisionGeometry geometry{config_.patch_size, merge, config_.window_size};
  const WindowIndex windows = window_index(grids, geometry);
  const std::vector<int32_t> patch_order = units_to_patches(windows.unit_order, merge);
  const std::vector<int32_t> positions_blocked = vision_patch_positions(grids, merge);
  std::vector<int32_t> positions(positions_blocked.size());
  for (int64_t i = 0; i < patches; ++i) {
    positions[size_t(i)] = positions_blocked[size_t(patch_order[size_t(i)])];
    positions[size_t(patches + i)] = positions_blocked[size_t(patches + patch_order[size_t(i)])];
  }
  const float scale = 1.0f / std::sqrt(float(head_dim_));
  const AttentionSegments window_segments =
      make_segments(backend, windows.cu_window_seqlens, windows.cu_window_seqlens, false, scale);
  const std::vector<int32_t> frames = frame_cu_seqlens(grids);
  const AttentionSegments frame_segments = make_segments(backend, frames, frames, false, scale);
  const Tensor positions_dev = upload_indices(backend, positions, {2, patches});
  const Tensor order_dev = upload_indices(backend, patch_order);
  const Tensor reverse_dev = upload_indices(backend, inverse_permutation(windows.unit_order));

  // Patch embedding (a Conv3d whose stride equals its kernel: one matrix product per patch),
  // then the rows regrouped window by window.
  Tensor x = backend.alloc({patches, h}, dt);
  const size_t before_pixels = backend.workspace_mark();
  Tensor pixels = backend.alloc(pixel_values.shape(), dt);
  backend.copy_from_host(pixel_values, pixels);
  Tensor embedded = backend.alloc({patches, h}, dt);
  backend.linear(pixels, weights_.patch_embed, nullptr, embedded);
  backend.gather_rows(embedded, order_dev, x);
  backend.workspace_release(before_pixels);  // pixels and embedding are dead from here on

  for (size_t b = 0; b < weights_.blocks.size(); ++b) {
    bool full = false;
    for (int index : config_.fullatt_block_indexes) full = full || index == int(b);
    block(backend, weights_.blocks[b], x, positions_dev, full ? frame_segments : window_segments);
  }

  // Merger: RMSNorm, then each merged unit's 4 consecutive rows as one row of 4·hidden.
  Tensor normed = backend.alloc({patches, h}, dt);
  backend.rms_norm(x, weights_.merger_norm, kVisionNormEps, normed);
  Tensor grouped = normed.view({patches / unit, h * unit});
  Tensor hidden = backend.alloc({patches / unit, h * unit}, dt);
  backend.linear(grouped, weights_.merger_fc1, &weights_.merger_fc1_b, hidden);
  backend.gelu(hidden);
  Tensor merged = backend.alloc({patches / unit, int64_t(config_.out_hidden_size)}, dt);
  backend.linear(hidden, weights_.merger_fc2, &weights_.merger_fc2_b, merged);
  backend.gather_rows(merged, reverse_dev, out);  // back to the processor's order
  backend.workspace_release(mark);
}

void VisionTower::block(Backend& backend, const VisionBlockWeights& w, Tensor& x,
                        const Tensor& positions, const AttentionSegments& segments) {
  const size_t mark = backend.workspace_mark();
  const int64_t n = x.dim(0), h = config_.hidden_size, vi = config_.intermediate_size;
  const int64_t heads = config_.num_heads;
  const DType dt = backend.compute_dtype();

  // x = x + proj(attention(rope(q), rope(k), v)) over norm1(x)
  Tensor delta = backend.alloc({n, h}, dt);
  Tensor normed = backend.alloc({n, h}, dt);
  backend.rms_norm(x, w.norm1, kVisionNormEps, normed);
  const size_t after_normed = backend.workspace_mark();
  Tensor q = backend.alloc({n, heads, int64_t(head_dim_)}, dt);
  Tensor k = backend.alloc({n, heads, int64_t(head_dim_)}, dt);
  Tensor v = backend.alloc({n, heads, int64_t(head_dim_)}, dt);
  Tensor q2 = q.view({n, h}), k2 = k.view({n, h}), v2 = v.view({n, h});
  backend.linear(normed, w.q_w, &w.q_b, q2);
  backend.linear(normed, w.k_w, &w.k_b, k2);
  backend.linear(normed, w.v_w, &w.v_b, v2);
  backend.rope(q, positions, rope_);
  backend.rope(k, positions, rope_);
  Tensor attended = backend.alloc({n, heads, int64_t(head_dim_)}, dt);
  backend.attention(q, k, v, segments, attended);
  backend.linear(attended.view({n, h}), w.proj_w, &w.proj_b, delta);
  backend.workspace_release(after_normed);  // q, k, v and the attention output are dead

  // x = x + down(silu(gate(y)) * up(y)), y = norm2(x); the MLP is per row, so it runs over
  // bounded row ranges and its 2·intermediate-wide activations never exist for every patch.
  backend.add_rms_norm(x, delta, w.norm2, kVisionNormEps, normed);
  const int64_t rows = std::min<int64_t>(n, kMlpRows);
  Tensor gate_all = backend.alloc({rows, vi}, dt);
  Tensor up_all = backend.alloc({rows, vi}, dt);
  for (int64_t begin = 0; begin < n; begin += rows) {
    const int64_t count = std::min(rows, n - begin);
    Tensor in = normed.rows(begin, count), gate = gate_all.rows(0, count),
           up = up_all.rows(0, count), out = delta.rows(begin, count);
    backend.linear(in, w.gate_w, &w.gate_b, gate);
    backend.linear(in, w.up_w, &w.up_b, up);
    backend.silu_mul(gate, up, gate);
    backend.linear(gate, w.down_w, &w.down_b, out);
  }
  backend.add(x, delta);
  backend.workspace_release(mark);
}

}  // namespace qwenvl
