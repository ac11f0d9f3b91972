// VideoPatchWriter: a video's pixel values written frame by frame into their final rows, so that
// no decoded or resized frame outlives its own write. transformers' Qwen2VLVideoProcessor
// reshapes the stacked frames to (grid_t, temporal, channel, h-blocks, merge, patch, w-blocks,
// merge, patch) and permutes to (grid_t, h-blocks, w-blocks, merge, merge, channel, temporal,
// patch, patch): frame k lands in temporal patch k / temporal, at slot k % temporal of every row
// of that patch. The image patchify (patchify.cpp) is the grid_t = 1 case with the frame repeated;
// it keeps its own PIL-path arithmetic, untouched.
//
// Values: the video processor fuses rescale and normalize (BaseImageProcessorFast
// _fuse_mean_std_and_rescale_factor): mean and std become float32 tensors times 1 / rescale_factor
// (255.0), and each value is (x - mean·255) / (std·255) in float32, x the uint8 as a float.
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "vision/large_buffer.h"
#include "vision/video.h"

namespace qwenvl {

namespace {

template <typename E>
void write_frame(const RgbImage& resized, const PreprocessConfig& config, const E (&table)[3][256],
                 int64_t k, ImagePatches& out) {
  const int patch = config.patch_size, merge = config.merge_size;
  const int temporal = config.temporal_patch_size;
  const int64_t rows = out.grid_h * out.grid_w;  // of one temporal patch
  const int64_t frame_len = int64_t(patch) * patch;
  const int64_t row_len = 3 * temporal * frame_len;
  const int64_t slot = k % temporal;
  E* values = static_cast<E*>(out.pixel_values.data()) + (k / temporal) * rows * row_len;
  const int64_t blocks_w = out.grid_w / merge;
  const uint8_t* pixels = resized.pixels.data();
  const size_t stride = size_t(resized.width) * 3;
  ThreadPool::global().parallel_for(rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t in_w = r % merge, in_h = (r / merge) % merge;
      const int64_t block_index = r / (int64_t(merge) * merge);
      const int64_t block_w = block_index % blocks_w, block_h = block_index / blocks_w;
      const int64_t y0 = (block_h * merge + in_h) * patch, x0 = (block_w * merge + in_w) * patch;
      E* row = values + r * row_len;
      for (int c = 0; c < 3; ++c) {
        E* dst = row + (int64_t(c) * temporal + slot) * frame_len;
        for (int py = 0; py < patch; ++py) {
          const uint8_t* src = pixels + size_t(y0 + py) * stride + size_t(x0) * 3 + c;
          for (int px = 0; px < patch; ++px) dst[py * patch + px] = table[c][src[3 * px]];
        }
      }
    }
  });
}

}  // namespace

VideoPatchWriter::VideoPatchWriter(int64_t frames, int height, int width,
                                   const PreprocessConfig& config, DType dtype)
    : config_(config), dtype_(dtype), frames_(frames) {
  const int patch = config.patch_size, merge = config.merge_size;
  const int temporal = config.temporal_patch_size;
  const int block = patch * merge;
  if (patch <= 0 || merge <= 0 || temporal <= 0)
    fail("patch_size, merge_size and temporal_patch_size must be positive");
  if (frames <= 0) fail("a video needs at least one frame");
  if (width <= 0 || height <= 0 || width % block || height % block)
    fail("video frames of ", width, "x", height, " are not a multiple of ", block,
         " pixels on each side");
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F16)
    fail("pixel values can be f32, bf16 or f16, not ", dtype_name(dtype));
  for (int c = 0; c < 3; ++c) {
    const float mean = config.image_mean[c] * float(1.0 / config.rescale_factor);
    const float std = config.image_std[c] * float(1.0 / config.rescale_factor);
    for (int v = 0; v < 256; ++v) {
      table_[c][v] = (float(v) - mean) / std;
      table16_[c][v] =
          dtype == DType::BF16 ? float_to_bf16(table_[c][v]) : float_to_fp16(table_[c][v]);
    }
  }
  out_.grid_t = (frames + temporal - 1) / temporal;
  out_.grid_h = height / patch;
  out_.grid_w = width / patch;
  const int64_t row_len = 3 * temporal * int64_t(patch) * patch;
  out_.pixel_values =
      vision_detail::large_tensor({out_.grid_t * out_.grid_h * out_.grid_w, row_len}, dtype);
}

void VideoPatchWriter::write(int64_t k, const RgbImage& resized) {
  QWENVL_CHECK(k == written_ && k < frames_, "frame ", k, " written out of order");
  QWENVL_CHECK(resized.width == out_.grid_w * config_.patch_size &&
               resized.height == out_.grid_h * config_.patch_size);
  if (dtype_ == DType::F32)
    write_frame(resized, config_, table_, k, out_);
  else
    write_frame(resized, config_, table16_, k, out_);
  ++written_;
}

ImagePatches VideoPatchWriter::finish() {
  QWENVL_CHECK(written_ == frames_, "only ", written_, " of ", frames_, " frames written");
  // Slots after the last frame repeat it, as the processor pads an odd count with the last frame.
  const int temporal = config_.temporal_patch_size;
  const int64_t frame_len = int64_t(config_.patch_size) * config_.patch_size;
  const int64_t row_len = 3 * temporal * frame_len;
  const int64_t rows = out_.grid_h * out_.grid_w;
  const int64_t last_slot = (frames_ - 1) % temporal;
  const size_t element = dtype_size(dtype_);
  auto* base = static_cast<uint8_t*>(out_.pixel_values.data()) +
               size_t((out_.grid_t - 1) * rows * row_len) * element;
  for (int64_t slot = last_slot + 1; slot < temporal; ++slot)
    for (int64_t r = 0; r < rows; ++r)
      for (int c = 0; c < 3; ++c) {
        uint8_t* row = base + size_t(r * row_len + c * temporal * frame_len) * element;
        std::memcpy(row + size_t(slot * frame_len) * element,
                    row + size_t(last_slot * frame_len) * element, size_t(frame_len) * element);
      }
  return std::move(out_);
}

}  // namespace qwenvl
