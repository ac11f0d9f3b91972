#include "model/vision_tower.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/device_indices.h"
#include "model/rope.h"
#include "model/weight_placement.h"

namespace qwenvl {

// Qwen2_5_VLVisionBlock and Qwen2_5_VLPatchMerger hard-code this epsilon.
constexpr float kVisionNormEps = 1e-6f;

VisionWeights load_vision_weights(const VisionConfig& c, WeightLoader& loader, bool stream_blocks) {
  VisionWeights w;
  const int64_t h = c.hidden_size;
  const int64_t patch_dim =
      int64_t(c.in_channels) * c.temporal_patch_size * c.patch_size * c.patch_size;
  w.patch_embed = loader.reshaped("visual.patch_embed.proj.weight", {h, patch_dim});
  for (int b = 0; b < c.depth; ++b) {
    const std::string p = cat("visual.blocks.", b, ".");
    VisionBlockWeights bw;
    if (stream_blocks) loader.begin_group(kVisionBlockSequence);
    bw.norm1 = loader.get(p + "norm1.weight");
    bw.norm2 = loader.get(p + "norm2.weight");
    // attn.qkv's output is (3, heads, head_dim): q, k and v heads, as rope_qkv reads them.
    bw.qkv_w = loader.get(p + "attn.qkv.weight");
    bw.qkv_b = loader.get(p + "attn.qkv.bias");
    bw.proj_w = loader.get(p + "attn.proj.weight");
    bw.proj_b = loader.get(p + "attn.proj.bias");
    // The MLP's width laid out residue first (see vision_mlp_width).
    bw.gate_up_w = loader.stacked({p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"}, true);
    bw.gate_up_b = loader.stacked({p + "mlp.gate_proj.bias", p + "mlp.up_proj.bias"}, true);
    bw.down_w = loader.residue_first_columns(p + "mlp.down_proj.weight");
    bw.down_b = loader.get(p + "mlp.down_proj.bias");
    if (stream_blocks) bw.streamed_group = loader.end_group();
    w.blocks.push_back(std::move(bw));
  }
  w.merger_norm = loader.get("visual.merger.ln_q.weight");
  w.merger_fc1 = loader.get("visual.merger.mlp.0.weight");
  w.merger_fc1_b = loader.get("visual.merger.mlp.0.bias");
  w.merger_fc2 = loader.get("visual.merger.mlp.2.weight");
  w.merger_fc2_b = loader.get("visual.merger.mlp.2.bias");
  return w;
}

VisionTower::VisionTower(const VisionConfig& config, VisionWeights weights, int64_t chunk_rows)
    : config_(config), weights_(std::move(weights)), chunk_rows_(chunk_rows) {
  if (chunk_rows < 1) fail("the vision chunk must hold at least one patch, not ", chunk_rows);
  if (config.hidden_act != "silu")
    fail("vision_config.hidden_act '", config.hidden_act,
         "' is not supported (Qwen2.5-VL uses silu)");
  if (config.hidden_size % config.num_heads != 0)
    fail("vision_config.hidden_size ", config.hidden_size, " is not a multiple of num_heads ",
         config.num_heads);
  head_dim_ = config.hidden_size / config.num_heads;
  rope_ = vision_rope_spec(head_dim_);
}

size_t VisionTower::workspace_bytes(const VisionConfig& c, int64_t patches, DType dtype,
                                    int64_t chunk_rows) {
  const int64_t patch_dim =
      int64_t(c.in_channels) * c.temporal_patch_size * c.patch_size * c.patch_size;
  const int64_t h = c.hidden_size, vi = vision_mlp_width(c);
  const int64_t unit = int64_t(c.spatial_merge_size) * c.spatial_merge_size;
  // A block chunk holds whole windows: at most chunk_rows patches, or one window when a window
  // alone is larger. The patch embedding takes the processor's rows chunk_rows at a time.
  const int64_t window_side = c.window_size / c.patch_size;
  const int64_t block_rows =
      std::min<int64_t>(patches, std::max<int64_t>(chunk_rows, window_side * window_side));
  const int64_t embed_rows = std::min<int64_t>(patches, chunk_rows);
  // The residual stream x exists for every patch from start to end; each phase adds its own.
  // Patch embedding: a chunk of pixels and their embedding.
  const int64_t embedding = embed_rows * (patch_dim + h);
  // Blocks: in an image of several chunks, the full-attention blocks' keys and values for every
  // patch; per chunk, the attention half (per row delta, attention output, q, k, v, and while
  // they are made normed and qkv: 9·hidden) or the MLP half (per row delta, normed and the
  // SwiGLU, 2·hidden + intermediate, then the gate/up product, 2·intermediate per row, or after
  // it the down projection's scratch), whichever is larger. Computing the keys and values takes
  // less.
  const bool one_chunk = patches <= chunk_rows;
  const int64_t key_values = c.fullatt_block_indexes.empty() || one_chunk ? 0 : 2 * h * patches;
  const int64_t mlp = block_rows * (2 * h + vi) +
                      std::max(block_rows * 2 * vi, Backend::linear_residue_first_workspace(
                                                        block_rows, h, c.intermediate_size));
  const int64_t blocks = key_values + std::max(block_rows * 9 * h, mlp);
  // Merger: a chunk's normed rows, its hidden layer (4·hidden per merged unit) and its output.
  const int64_t merger = block_rows * 2 * h + block_rows / unit * c.out_hidden_size;
  const int64_t elements = patches * h + std::max({embedding, blocks, merger});
  // Index tensors, fewer than 8 I32 per patch: the patches' window positions (1), the units'
  // order (1/4), per chunk rope positions (2) and window and frame boundaries (at most one per
  // merged unit and frame of 4+ patches, twice each, plus a few per chunk of thousands of rows).
  // The MiB covers every allocation's alignment.
  return size_t(elements) * dtype_size(dtype) + size_t(patches) * 8 * sizeof(int32_t) +
         (size_t(1) << 20);
}

namespace {

// Chunks of at most chunk_rows patches that end on window boundaries (windows never cross
// frames), each with its positions and attention segments on the device.
std::vector<VisionChunk> make_chunks(Backend& backend, const WindowIndex& windows,
                                     const std::vector<int32_t>& frames,
                                     const std::vector<int32_t>& positions, int64_t patches,
                                     int64_t chunk_rows, float scale) {
  std::vector<VisionChunk> chunks;
  const std::vector<int32_t>& cu = windows.cu_window_seqlens;
  size_t w = 0;
  while (w + 1 < cu.size()) {
    size_t end = w + 1;
    while (end + 1 < cu.size() && cu[end + 1] - cu[w] <= chunk_rows) ++end;
    VisionChunk c;
    c.begin = cu[w];
    c.count = cu[end] - cu[w];
    std::vector<int32_t> local;
    for (size_t i = w; i <= end; ++i) local.push_back(cu[i] - int32_t(c.begin));
    c.windows = make_segments(backend, local, local, false, scale);
    // Full attention: the chunk's rows of each frame against all of that frame's keys.
    std::vector<int32_t> cu_q{0}, cu_k{0};
    std::vector<std::pair<int32_t, int32_t>> key_ranges;
    for (size_t f = 0; f + 1 < frames.size(); ++f) {
      const int64_t lo = std::max<int64_t>(frames[f], c.begin);
      const int64_t hi = std::min<int64_t>(frames[f + 1], c.begin + c.count);
      if (lo >= hi) continue;
      cu_q.push_back(int32_t(hi - c.begin));
      key_ranges.push_back({frames[f], frames[f + 1]});
    }
    // cu_k lists each segment's key range; consecutive frames are adjacent, so the boundaries
    // are the frames' own.
    cu_k = {key_ranges.front().first};
    for (const auto& range : key_ranges) cu_k.push_back(range.second);
    c.frames = make_segments(backend, cu_q, cu_k, false, scale);
    std::vector<int32_t> chunk_positions(size_t(2 * c.count));
    for (int row = 0; row < 2; ++row)
      for (int64_t i = 0; i < c.count; ++i)
        chunk_positions[size_t(row * c.count + i)] = positions[size_t(row * patches + c.begin + i)];
    c.positions = upload_indices(backend, chunk_positions, {2, c.count});
    chunks.push_back(std::move(c));
    w = end;
  }
  return chunks;
}

}  // namespace

int64_t VisionTower::piece_patches(const VisionGrid& grid, int64_t chunk_rows) {
  const int64_t per_t = grid.h * grid.w;
  return std::min(grid.patches(), std::max<int64_t>(1, chunk_rows / per_t) * per_t);
}

void VisionTower::encode(Backend& backend, const Tensor& pixel_values, const VisionGrid& grid,
                         Tensor& out, int64_t max_patches) {
  const int64_t patches = grid.patches();
  if (max_patches <= 0 || patches <= max_patches) {
    encode_piece(backend, pixel_values, grid, out, patches);
    return;
  }
  const int64_t per_t = grid.h * grid.w;
  if (per_t > max_patches)
    fail("a temporal patch of ", grid.h, "x", grid.w, " patches is more than the ", max_patches,
         " patches the vision workspace was planned for: lower the video's max_pixels or plan a "
         "larger image");
  const int64_t unit = int64_t(config_.spatial_merge_size) * config_.spatial_merge_size;
  QWENVL_CHECK(pixel_values.dim(0) == patches && out.dim(0) == patches / unit, "pixel_values ",
               pixel_values.shape().str(), ", out ", out.shape().str());
  // Processor order is temporal patch first, so each piece's pixel rows and merged rows are
  // contiguous.
  const int64_t step = max_patches / per_t;
  for (int64_t t = 0; t < grid.t; t += step) {
    const int64_t count = std::min(step, grid.t - t);
    Tensor out_rows = out.rows(t * per_t / unit, count * per_t / unit);
    encode_piece(backend, pixel_values.rows(t * per_t, count * per_t), {count, grid.h, grid.w},
                 out_rows, patches);
  }
}

void VisionTower::encode_piece(Backend& backend, const Tensor& pixel_values, const VisionGrid& grid,
                               Tensor& out, int64_t reference_rows) {
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
  const std::vector<VisionChunk> chunks = make_chunks(backend, windows, frame_cu_seqlens(grids),
                                                      positions, patches, chunk_rows_, scale);
  // Where each patch and merged unit goes: the window-order row of processor patch p, and the
  // processor-order unit of window-order unit u (windows.unit_order).
  const Tensor patch_rows_dev = upload_indices(backend, inverse_permutation(patch_order));
  const Tensor unit_order_dev = upload_indices(backend, windows.unit_order);

  // Patch embedding (a Conv3d whose stride equals its kernel: one matrix product per patch),
  // chunk_rows_ of the processor's patches at a time, each row placed at its window position.
  Tensor x = backend.alloc({patches, h}, dt);
  {
    const size_t before_embedding = backend.workspace_mark();
    const int64_t rows = std::min<int64_t>(patches, chunk_rows_);
    Tensor pixels = backend.alloc({rows, pixel_values.dim(1)}, dt);
    Tensor embedded = backend.alloc({rows, h}, dt);
    for (int64_t begin = 0; begin < patches; begin += rows) {
      const int64_t count = std::min(rows, patches - begin);
      Tensor chunk_pixels = pixels.rows(0, count), chunk_embedded = embedded.rows(0, count);
      backend.copy_from_host(pixel_values.rows(begin, count), chunk_pixels);
      backend.linear_in_order(chunk_pixels, weights_.patch_embed, chunk_embedded);
      backend.scatter_rows(chunk_embedded, patch_rows_dev.rows(begin, count), x);
    }
    backend.workspace_release(before_embedding);
  }

  backend.begin_streamed_pass(kVisionBlockSequence);
  for (size_t b = 0; b < weights_.blocks.size(); ++b) {
    bool full = false;
    for (int index : config_.fullatt_block_indexes) full = full || index == int(b);
    const VisionBlockWeights& w = weights_.blocks[b];
    if (w.streamed_group >= 0) backend.use_streamed_group(w.streamed_group);
    block(backend, w, full, x, chunks, reference_rows);
    if (w.streamed_group >= 0) backend.streamed_group_done(w.streamed_group);
  }

  // Merger, chunk by chunk (whole windows are whole merged units): RMSNorm, then each merged
  // unit's 4 consecutive rows as one row of 4·hidden through the MLP, and the merged rows back to
  // the processor's order.
  for (const VisionChunk& c : chunks) {
    QWENVL_CHECK(c.begin % unit == 0 && c.count % unit == 0, "vision chunk [", c.begin, ", +",
                 c.count, ") is not made of whole merged units");
    const size_t chunk_mark = backend.workspace_mark();
    const int64_t units = c.count / unit;
    Tensor normed = backend.alloc({c.count, h}, dt);
    backend.rms_norm(x.rows(c.begin, c.count), weights_.merger_norm, kVisionNormEps, normed);
    Tensor hidden = backend.alloc({units, h * unit}, dt);
    backend.linear(normed.view({units, h * unit}), weights_.merger_fc1, &weights_.merger_fc1_b,
                   hidden);
    backend.gelu(hidden);
    Tensor merged = backend.alloc({units, int64_t(config_.out_hidden_size)}, dt);
    backend.linear(hidden, weights_.merger_fc2, &weights_.merger_fc2_b, merged);
    backend.scatter_rows(merged, unit_order_dev.rows(c.begin / unit, units), out);
    backend.workspace_release(chunk_mark);
  }
  backend.workspace_release(mark);
}

void VisionTower::prepare(Backend& backend, int64_t max_patches) const {
  if (weights_.blocks.empty() || max_patches <= 0) return;
  const int64_t rows = std::min(max_patches, chunk_rows_);  // every product runs chunk by chunk
  const int64_t units = config_.spatial_merge_size * config_.spatial_merge_size;
  const DType dt = backend.compute_dtype();
  const VisionBlockWeights& b = weights_.blocks.front();  // every block has the same shapes
  for (const Tensor* w : {&b.qkv_w, &b.proj_w, &b.gate_up_w})
    backend.prepare_linear(*w, true, dt, rows);
  backend.prepare_linear_residue_first(b.down_w, config_.intermediate_size, rows);
  for (const Tensor* w : {&weights_.merger_fc1, &weights_.merger_fc2})
    backend.prepare_linear(*w, true, dt, rows / units);
}

void VisionTower::attention_inputs(Backend& backend, const VisionBlockWeights& w,
                                   const Tensor& x_rows, const Tensor& positions, Tensor& q,
                                   Tensor& k, Tensor& v) {
  const int64_t n = x_rows.dim(0), h = config_.hidden_size;
  const DType dt = backend.compute_dtype();
  const size_t mark = backend.workspace_mark();
  Tensor normed = backend.alloc({n, h}, dt);
  backend.rms_norm(x_rows, w.norm1, kVisionNormEps, normed);
  Tensor qkv = backend.alloc({n, 3 * h}, dt);
  backend.linear_rope_qkv(normed, w.qkv_w, w.qkv_b, QkvProducts::kOne, positions, rope_, Tensor(),
                          qkv, q, k, v);
  backend.workspace_release(mark);
}

void VisionTower::block(Backend& backend, const VisionBlockWeights& w, bool full, Tensor& x,
                        const std::vector<VisionChunk>& chunks, int64_t reference_rows) {
  if (!full || chunks.size() == 1) {
    for (const VisionChunk& c : chunks)
      chunk_step(backend, w, x, c, full, nullptr, nullptr, reference_rows);
    return;
  }
  // Full attention over several chunks reads every patch's keys and values: compute them all
  // first, chunk by chunk, then run each chunk's queries against them.
  const size_t mark = backend.workspace_mark();
  const int64_t n = x.dim(0), heads = config_.num_heads, hd = head_dim_;
  const DType dt = backend.compute_dtype();
  Tensor keys = backend.alloc({n, heads, hd}, dt);
  Tensor values = backend.alloc({n, heads, hd}, dt);
  for (const VisionChunk& c : chunks) {
    const size_t chunk_mark = backend.workspace_mark();
    Tensor q = backend.alloc({c.count, heads, hd}, dt);  // recomputed in chunk_step
    Tensor k = keys.rows(c.begin, c.count), v = values.rows(c.begin, c.count);
    attention_inputs(backend, w, x.rows(c.begin, c.count), c.positions, q, k, v);
    backend.workspace_release(chunk_mark);
  }
  for (const VisionChunk& c : chunks)
    chunk_step(backend, w, x, c, true, &keys, &values, reference_rows);
  backend.workspace_release(mark);
}

void VisionTower::chunk_step(Backend& backend, const VisionBlockWeights& w, Tensor& x,
                             const VisionChunk& c, bool full, const Tensor* keys,
                             const Tensor* values, int64_t reference_rows) {
  const size_t mark = backend.workspace_mark();
  const int64_t n = c.count, h = config_.hidden_size, vi = vision_mlp_width(config_);
  const int64_t heads = config_.num_heads, hd = head_dim_;
  const DType dt = backend.compute_dtype();
  Tensor rows = x.rows(c.begin, n);
  // Allocated in the order they die, so that the attention half's temporaries are gone before
  // the MLP's take their place (VisionTower::workspace_bytes counts the larger half).
  Tensor delta = backend.alloc({n, h}, dt);

  // x = x + proj(attention(rope(q), rope(k), v)) over norm1(x)
  const size_t attention_mark = backend.workspace_mark();
  Tensor attended = backend.alloc({n, heads, hd}, dt);
  Tensor q = backend.alloc({n, heads, hd}, dt);
  Tensor k = backend.alloc({n, heads, hd}, dt);
  Tensor v = backend.alloc({n, heads, hd}, dt);
  attention_inputs(backend, w, rows, c.positions, q, k, v);
  if (!full)
    backend.attention(q, k, v, c.windows, attended);
  else if (keys)
    backend.attention(q, *keys, *values, c.frames, attended);
  else
    backend.attention(q, k, v, c.frames, attended);
  backend.linear(attended.view({n, h}), w.proj_w, &w.proj_b, delta);
  backend.workspace_release(attention_mark);

  // x = x + down(silu(gate(y)) * up(y)), y = norm2(x); the down projection's scratch takes
  // gate_up's place
  Tensor normed = backend.alloc({n, h}, dt);
  backend.add_rms_norm(rows, delta, w.norm2, kVisionNormEps, normed);
  Tensor hidden = backend.alloc({n, vi}, dt);
  {
    const size_t gate_up_mark = backend.workspace_mark();
    Tensor gate_up = backend.alloc({n, 2 * vi}, dt);
    backend.linear_swiglu(normed, w.gate_up_w, &w.gate_up_b, gate_up, hidden);
    backend.workspace_release(gate_up_mark);
  }
  // transformers multiplies all the image's (or the whole video's) patches at once.
  backend.linear_residue_first(hidden, w.down_w, &w.down_b, config_.intermediate_size,
                               reference_rows, delta);
  backend.add(rows, delta);
  backend.workspace_release(mark);
}

}  // namespace qwenvl
