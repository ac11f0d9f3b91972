// preprocess_image and patchify_image: the processor's rescale, normalize and patch flattening
// fused into one pass. Every uint8 value maps to one float per channel, so the arithmetic of
// transformers' numpy code (x.astype(float64) * rescale_factor, cast to float32, then
// (x - mean) / std in float32) is done once per (channel, value) into a table and the pass only
// gathers: the results are the processor's bit for bit.
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"
#include "vision/large_buffer.h"
#include "vision/preprocess.h"

namespace qwenvl {

ImagePatches patchify_image(const RgbImage& resized, const PreprocessConfig& config) {
  const int patch = config.patch_size, merge = config.merge_size;
  const int temporal = config.temporal_patch_size;
  const int block = patch * merge;
  if (patch <= 0 || merge <= 0 || temporal <= 0)
    fail("patch_size, merge_size and temporal_patch_size must be positive");
  if (resized.width <= 0 || resized.height <= 0 || resized.width % block || resized.height % block)
    fail("patchify: image of ", resized.width, "x", resized.height, " is not a multiple of ", block,
         " pixels on each side");
  QWENVL_CHECK(resized.pixels.size() == size_t(resized.width) * resized.height * 3);

  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      float x = float(double(v) * config.rescale_factor);
      table[c][v] = (x - config.image_mean[c]) / config.image_std[c];
    }
  }

  ImagePatches out;
  out.grid_t = 1;  // one image: a single frame, repeated to fill the temporal patch
  out.grid_h = resized.height / patch;
  out.grid_w = resized.width / patch;
  const int64_t rows = out.grid_h * out.grid_w;
  const int64_t frame_len = int64_t(patch) * patch;  // one channel of one frame
  const int64_t row_len = 3 * temporal * frame_len;  // 1176 for Qwen2.5-VL
  out.pixel_values = vision_detail::large_tensor({rows, row_len}, DType::F32);
  float* values = out.pixel_values.data<float>();
  const int64_t blocks_w = out.grid_w / merge;
  const uint8_t* pixels = resized.pixels.data();
  const size_t stride = size_t(resized.width) * 3;

  ThreadPool::global().parallel_for(rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      // r = ((block_h * blocks_w + block_w) * merge + in_h) * merge + in_w
      const int64_t in_w = r % merge, in_h = (r / merge) % merge;
      const int64_t block_index = r / (int64_t(merge) * merge);
      const int64_t block_w = block_index % blocks_w, block_h = block_index / blocks_w;
      const int64_t y0 = (block_h * merge + in_h) * patch, x0 = (block_w * merge + in_w) * patch;
      float* row = values + r * row_len;
      for (int c = 0; c < 3; ++c) {
        float* first = row + int64_t(c) * temporal * frame_len;
        const float* lut = table[c];
        for (int py = 0; py < patch; ++py) {
          const uint8_t* src = pixels + size_t(y0 + py) * stride + size_t(x0) * 3 + c;
          float* dst = first + py * patch;
          for (int px = 0; px < patch; ++px) dst[px] = lut[src[3 * px]];
        }
        for (int t = 1; t < temporal; ++t)
          std::memcpy(first + t * frame_len, first, sizeof(float) * frame_len);
      }
    }
  });
  return out;
}

ImagePatches preprocess_image(const RgbImage& image, const PreprocessConfig& config) {
  const auto [height, width] =
      smart_resize(image.height, image.width, config.patch_size * config.merge_size,
                   config.min_pixels, config.max_pixels);
  if (height == image.height && width == image.width) return patchify_image(image, config);
  return patchify_image(resize_bicubic(image, width, height), config);
}

}  // namespace qwenvl
