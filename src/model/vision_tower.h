#pragma once
// Qwen2.5-VL's vision encoder (transformers' Qwen2_5_VisionTransformerPretrainedModel): patch
// embedding, window reordering, RMSNorm + windowed/full attention blocks with 2D rotary
// embeddings, and the 2x2 patch merger into the language model's width.
#include <vector>

#include "backend/backend.h"
#include "backend/residue_first.h"
#include "checkpoint/config.h"
#include "model/weight_loader.h"
#include "model/window_index.h"

namespace qwenvl {

struct VisionBlockWeights {
  Tensor norm1, norm2;    // [hidden]
  Tensor qkv_w, qkv_b;    // attn.qkv: [3·hidden, hidden] (q, k, v heads), [3·hidden]
  Tensor proj_w, proj_b;  // [hidden, hidden], [hidden]
  // gate_proj then up_proj, each padded to the MLP width w (vision_mlp_width): [2w, hidden], [2w]
  Tensor gate_up_w, gate_up_b;
  Tensor down_w, down_b;    // [hidden, w] (zero columns past intermediate), [hidden]
  int streamed_group = -1;  // Backend's streamed group holding the block, -1: resident
};

struct VisionWeights {
  Tensor patch_embed;  // Conv3d [hidden, 3, 2, 14, 14] seen as [hidden, 1176]; no bias
  std::vector<VisionBlockWeights> blocks;
  Tensor merger_norm;               // ln_q [hidden]
  Tensor merger_fc1, merger_fc1_b;  // mlp.0 [4·hidden, 4·hidden]
  Tensor merger_fc2, merger_fc2_b;  // mlp.2 [out_hidden, 4·hidden]
};

// stream_blocks: each block is a streamed group of kVisionBlockSequence (model/weight_placement.h).
VisionWeights load_vision_weights(const VisionConfig& config, WeightLoader& loader,
                                  bool stream_blocks = false);

// The vision MLP's width as stored: intermediate_size (3420 in every Qwen2.5-VL) laid out
// ResidueFirst (3456: 28 columns, 36 zero columns, 3392 columns), gate/up rows and down
// columns alike. Rows of 3420 bf16 values are not 16-byte aligned, which would cost the down
// projection its Hopper GEMM kernels (3x slower) and the activation its vector loads; the zero
// columns contribute exact zeros (silu(0)·0 = 0, times zero weights), and the layout lets the
// down projection round as transformers' does (Backend::linear_residue_first).
inline int64_t vision_mlp_width(const VisionConfig& c) {
  return ResidueFirst{c.intermediate_size}.width();
}

// Patches a block processes at once by default (whole windows, so up to one window less): bounds
// the activations of attention and MLP independently of the image size. Only the residual
// stream, and in the full-attention blocks of an image of several chunks the keys and values,
// exist for every patch. 8192 keeps a ~1 MP image (6,256 patches at 1280x960) in one chunk:
// every product runs once over all its rows, and the full-attention blocks take their keys from
// the chunk itself.
constexpr int64_t kChunkRows = 8192;

// A range of patches (in window order) processed together, with what its attention needs.
struct VisionChunk {
  int64_t begin = 0, count = 0;
  Tensor positions;           // I32 [2, count]: the chunk's (h, w) rope positions
  AttentionSegments windows;  // its windows, rows relative to the chunk
  AttentionSegments frames;   // its rows against all keys of their frames
};

class VisionTower {
 public:
  // chunk_rows: patches a block processes at once (see kChunkRows).
  VisionTower(const VisionConfig& config, VisionWeights weights, int64_t chunk_rows = kChunkRows);

  // One image or video (all its frames): pixel_values f32 host [patches, 1176] as the processor
  // makes them -> out [patches / 4, out_hidden] (compute dtype, allocated by the caller), rows in
  // the processor's merged-unit order (the order of the prompt's pad tokens). Temporaries come from
  // the workspace and are released before returning.
  //
  // A grid of more than max_patches patches (0: no bound; the workspace's planned size) runs in
  // pieces of whole temporal patches, as many as max_patches holds, their rows written in order.
  // The result is that of one pass: attention never crosses a temporal patch (windows are cut per
  // frame, and the full-attention blocks' cu_seqlens repeat h·w per t in transformers), and the
  // MLP's down projection is told the whole grid's rows (transformers multiplies them at once).
  // Error when one temporal patch alone is more than max_patches.
  void encode(Backend& backend, const Tensor& pixel_values, const VisionGrid& grid, Tensor& out,
              int64_t max_patches = 0);

  // The patches of the largest piece a video of `grid` needs the workspace planned for: as many
  // whole temporal patches as one chunk of chunk_rows holds, at least one (the whole grid when it
  // is smaller). Beyond one chunk the full-attention blocks would keep every patch's keys and
  // values, so larger pieces cost memory without saving work.
  static int64_t piece_patches(const VisionGrid& grid, int64_t chunk_rows = kChunkRows);

  // Lets the backend prepare the matrix products of images of up to max_patches patches.
  void prepare(Backend& backend, int64_t max_patches) const;

  // Workspace encode() needs for a grid of `patches` patches, in bytes of `dtype` activations,
  // with chunks of at most chunk_rows patches.
  static size_t workspace_bytes(const VisionConfig& config, int64_t patches, DType dtype,
                                int64_t chunk_rows = kChunkRows);

 private:
  // One piece (or the whole grid); reference_rows: the rows transformers multiplies at once.
  void encode_piece(Backend& backend, const Tensor& pixel_values, const VisionGrid& grid,
                    Tensor& out, int64_t reference_rows);
  void block(Backend& backend, const VisionBlockWeights& w, bool full, Tensor& x,
             const std::vector<VisionChunk>& chunks, int64_t reference_rows);
  // The block's attention over one chunk: x rows += proj(attention(...)), then the MLP on them.
  // Full attention (`full`) reads every patch's `keys`/`values`, or the chunk's own when they are
  // null (an image of one chunk); otherwise the chunk's windows.
  void chunk_step(Backend& backend, const VisionBlockWeights& w, Tensor& x, const VisionChunk& c,
                  bool full, const Tensor* keys, const Tensor* values, int64_t reference_rows);
  // q, k, v of a chunk's rows (k and v may be views into every patch's keys and values):
  // norm1, the fused q/k/v product and the 2-D rotary step at `positions`; its temporaries are
  // released before it returns.
  void attention_inputs(Backend& backend, const VisionBlockWeights& w, const Tensor& x_rows,
                        const Tensor& positions, Tensor& q, Tensor& k, Tensor& v);

  VisionConfig config_;
  VisionWeights weights_;
  RopeSpec rope_;
  int head_dim_ = 0;
  int64_t chunk_rows_ = kChunkRows;
};

}  // namespace qwenvl
