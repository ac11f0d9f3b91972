// preprocess_image and patchify_image: the processor's rescale, normalize and patch flattening
// fused into one pass. Every uint8 value maps to one float per channel, so the arithmetic of
// transformers' numpy code (x.astype(float64) * rescale_factor, cast to float32, then
// (x - mean) / std in float32) is done once per (channel, value) into a table and the pass only
// gathers: the results are the processor's bit for bit.
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "vision/large_buffer.h"
#include "vision/preprocess.h"

namespace qwenvl {

namespace {

// The pass itself, for element type E (float, or the 16-bit patterns of bf16 / f16); table[c][v]
// is channel c's value for the uint8 v.
template <typename E>
void fill_patches(const RgbImage& resized, const PreprocessConfig& config, const E (&table)[3][256],
                  ImagePatches& out) {
  const int patch = config.patch_size, merge = config.merge_size;
  const int temporal = config.temporal_patch_size;
  const int64_t rows = out.grid_h * out.grid_w;
  const int64_t frame_len = int64_t(patch) * patch;  // one channel of one frame
  const int64_t row_len = 3 * temporal * frame_len;  // 1176 for Qwen2.5-VL
  E* values = static_cast<E*>(out.pixel_values.data());
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
      E* row = values + r * row_len;
      for (int c = 0; c < 3; ++c) {
        E* first = row + int64_t(c) * temporal * frame_len;
        const E* lut = table[c];
        for (int py = 0; py < patch; ++py) {
          const uint8_t* src = pixels + size_t(y0 + py) * stride + size_t(x0) * 3 + c;
          E* dst = first + py * patch;
          for (int px = 0; px < patch; ++px) dst[px] = lut[src[3 * px]];
        }
        for (int t = 1; t < temporal; ++t)
          std::memcpy(first + t * frame_len, first, sizeof(E) * frame_len);
      }
    }
  });
}

}  // namespace

ImagePatches patchify_image(const RgbImage& resized, const PreprocessConfig& config, DType dtype) {
  const int patch = config.patch_size, merge = config.merge_size;
  const int temporal = config.temporal_patch_size;
  const int block = patch * merge;
  if (patch <= 0 || merge <= 0 || temporal <= 0)
    fail("patch_size, merge_size and temporal_patch_size must be positive");
  if (resized.width <= 0 || resized.height <= 0 || resized.width % block || resized.height % block)
    fail("patchify: image of ", resized.width, "x", resized.height, " is not a multiple of ", block,
         " pixels on each side");
  if (dtype != DType::F32 && dtype != DType::BF16 && dtype != DType::F16)
    fail("patchify: pixel values can be f32, bf16 or f16, not ", dtype_name(dtype));
  QWENVL_CHECK(resized.pixels.size() == size_t(resized.width) * resized.height * 3);

  float table[3][256];
  uint16_t table16[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      float x = float(double(v) * config.rescale_factor);
      table[c][v] = (x - config.image_mean[c]) / config.image_std[c];
      table16[c][v] =
          dtype == DType::BF16 ? float_to_bf16(table[c][v]) : float_to_fp16(table[c][v]);
    }
  }

  ImagePatches out;
  out.grid_t = 1;  // one image: a single frame, repeated to fill the temporal patch
  out.grid_h = resized.height / patch;
  out.grid_w = resized.width / patch;
  const int64_t row_len = 3 * temporal * int64_t(patch) * patch;
  out.pixel_values = vision_detail::large_tensor({out.grid_h * out.grid_w, row_len}, dtype);
  if (dtype == DType::F32)
    fill_patches(resized, config, table, out);
  else
    fill_patches(resized, config, table16, out);
  return out;
}

ImagePatches preprocess_image(const RgbImage& image, const PreprocessConfig& config, DType dtype) {
  const auto [height, width] =
      smart_resize(image.height, image.width, config.patch_size * config.merge_size,
                   config.min_pixels, config.max_pixels);
  if (height == image.height && width == image.width) return patchify_image(image, config, dtype);
  return patchify_image(resize_bicubic(image, width, height), config, dtype);
}

}  // namespace qwenvl
