#pragma once
// Qwen2-VL image preprocessing exactly as transformers' Qwen2VLImageProcessor (PIL backend):
// smart_resize to multiples of patch·merge, PIL bicubic resize on 8-bit, rescale, normalize,
// frame repeated to temporal_patch_size, patches flattened in the processor's order.
#include <cstdint>
#include <string>
#include <utility>

#include "core/tensor.h"
#include "vision/image.h"

namespace qwenvl {

struct PreprocessConfig {
  int64_t min_pixels = 56 * 56;
  int64_t max_pixels = 28 * 28 * 1280;
  int patch_size = 14;
  int merge_size = 2;
  int temporal_patch_size = 2;
  // A double, as in Python: transformers multiplies the uint8 pixels by it in float64 and only
  // then casts to float32; float(1/255) would move some values by one float32 ulp.
  double rescale_factor = 1.0 / 255.0;
  float image_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  float image_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
};

// The most pixels an image may be resized to (min_pixels / max_pixels, from a file, a flag or a
// request): four times Qwen2.5-VL's default max_pixels, 65,536 tokens. Its pixel values take
// 1.2 GB in f32.
inline constexpr int64_t kMaxResizedPixels = 4 * 12'845'056;

// Error naming `source` unless 1 <= min_pixels <= max_pixels <= kMaxResizedPixels.
void check_pixel_bounds(int64_t min_pixels, int64_t max_pixels, const std::string& source);

// DIR/preprocessor_config.json (or the "image_processor" entry of DIR/processor_config.json);
// fields it lacks keep the defaults above. `size` {shortest_edge, longest_edge} is read and then
// overridden by top-level min_pixels / max_pixels, as the processor's constructor does. Error when
// neither file exists or the file asks for something else than the bicubic / rescale / normalize
// pipeline implemented here.
PreprocessConfig load_preprocess_config(const std::string& model_dir);

// transformers' smart_resize: (height, width) rounded to multiples of `factor` with the pixel
// count inside [min_pixels, max_pixels]. Error for aspect ratios over 200 or empty images.
std::pair<int, int> smart_resize(int height, int width, int factor, int64_t min_pixels,
                                 int64_t max_pixels);

// PIL's Image.resize(..., BICUBIC) on 8-bit RGB, bit for bit.
RgbImage resize_bicubic(const RgbImage& image, int width, int height);

struct ImagePatches {
  Tensor pixel_values;  // [t·h·w, channels·temporal·patch·patch] = [patches, 1176]
  int64_t grid_t = 1, grid_h = 0, grid_w = 0;
  int64_t tokens() const { return grid_t * grid_h * grid_w; }  // before the 2x2 merge
};

// smart_resize + resize_bicubic + patchify_image.
ImagePatches preprocess_image(const RgbImage& image, const PreprocessConfig& config,
                              DType dtype = DType::F32);

// Rescale, normalize, repeat to temporal_patch_size and flatten an image whose sides are already
// multiples of patch_size * merge_size: rows in (h-block, w-block, h-in-merge, w-in-merge) order,
// each row (channel, frame, y, x), the processor's transpose (0, 1, 4, 7, 5, 8, 3, 2, 6, 9).
// dtype F32 gives the processor's float32 values; BF16 / F16 give those values rounded to
// nearest even, as the model casts them before its patch embedding: the same numbers for a
// bf16/fp16 model, with half the bytes to write and to upload.
ImagePatches patchify_image(const RgbImage& resized, const PreprocessConfig& config,
                            DType dtype = DType::F32);

}  // namespace qwenvl
