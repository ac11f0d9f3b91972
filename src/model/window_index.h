#pragma once
// Where the vision tower's patches go: the window order of Qwen2.5-VL's windowed attention and
// each patch's (row, column) for the 2D rotary embedding. Everything here is host-side index
// arithmetic on the grids; the tower copies the results to the device.
//
// Patches arrive from the processor in "merge-blocked" order: per frame, 2x2 blocks of patches
// (one merged unit each) in raster order of the blocks, the 4 patches of a block consecutive.
#include <cstdint>
#include <vector>

namespace qwenvl {

struct VisionGrid {
  int64_t t = 1, h = 0, w = 0;  // in patches (h, w multiples of the merge size)
  int64_t patches() const { return t * h * w; }
};

struct VisionGeometry {
  int patch_size = 14;
  int merge_size = 2;
  int window_size = 112;  // pixels
  int64_t units_per_window_side() const { return window_size / merge_size / patch_size; }
};

struct WindowIndex {
  // Merged units in window order: unit_order[i] is the merge-blocked index of the i-th unit.
  std::vector<int32_t> unit_order;
  // Boundaries of the windows in patches (0, ..., total patches), empty windows removed as
  // transformers' unique_consecutive does.
  std::vector<int32_t> cu_window_seqlens;
};

// transformers' Qwen2_5_VisionTransformerPretrainedModel.get_window_index: each frame's merged
// units are padded up to whole windows of units_per_window_side² units (always at least one
// padding row and column of windows, as transformers pads by `size - n % size`), windows taken in
// raster order, padding dropped.
WindowIndex window_index(const std::vector<VisionGrid>& grids, const VisionGeometry& geometry);

// cu_seqlens for full-attention blocks: one segment per frame (t·h·w / t patches each).
std::vector<int32_t> frame_cu_seqlens(const std::vector<VisionGrid>& grids);

// rot_pos_emb's position ids in merge-blocked order: rows [2][patches] (row 0 = patch row h,
// row 1 = patch column w), repeated for every frame.
std::vector<int32_t> vision_patch_positions(const std::vector<VisionGrid>& grids, int merge_size);

// Expands a unit permutation to patch rows: unit u covers patches [u·m², (u+1)·m²).
std::vector<int32_t> units_to_patches(const std::vector<int32_t>& unit_order, int merge_size);

// argsort of a permutation: its inverse (transformers' reverse_indices).
std::vector<int32_t> inverse_permutation(const std::vector<int32_t>& order);

}  // namespace qwenvl
