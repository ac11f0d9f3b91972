#pragma once
// M-RoPE position ids of a prompt: transformers' Qwen2_5_VLModel.get_rope_index for one sequence.
// Text advances all three rows (t, h, w) together; an image or video's pad tokens get
// (t, h, w) coordinates of their merged unit, offset by the position where the vision block
// starts; text after it resumes at the largest position so far + 1.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "model/window_index.h"

namespace qwenvl {

struct VisionTokenIds {
  int32_t image = 151655;
  int32_t video = 151656;
};

struct RopeIndexInputs {
  std::vector<VisionGrid> image_grids;  // in order of appearance, in patches
  std::vector<VisionGrid> video_grids;
  std::vector<float> seconds_per_video_grid;  // one per video (1.0 when empty)
  int merge_size = 2;
  int tokens_per_second = 2;
  VisionTokenIds tokens;
};

struct MropePositions {
  int64_t length = 0;
  std::vector<int64_t> rows;  // [3][length]: t, h, w
  // max position + 1 - length: the offset decoding adds to cache positions (rope_deltas).
  int64_t rope_delta = 0;
  int64_t at(int row, int64_t i) const { return rows[size_t(row * length + i)]; }
};

// Error when the pad tokens do not match the grids (a vision block shorter than its grid, or more
// grids than blocks): the prompt and the images disagree.
MropePositions rope_index(const std::vector<int32_t>& ids, const RopeIndexInputs& inputs);

// The position of the token at cache index `cache_position` generated after the prompt:
// cache_position + rope_delta on all three rows (transformers adds rope_deltas to
// cache_position while decoding).
inline int64_t decode_position(int64_t cache_position, int64_t rope_delta) {
  return cache_position + rope_delta;
}

}  // namespace qwenvl
