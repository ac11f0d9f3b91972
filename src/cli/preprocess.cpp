// `qwenvl preprocess`: one image through the vision preprocessing, to see what the model will be
// given (size, grid, token count) and how long it takes; optionally the pixel_values as .npy.
#include "vision/preprocess.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/npy.h"
#include "cli/video_flags.h"
#include "core/error.h"
#include "vision/image.h"

namespace qwenvl::cli {
namespace {

// Above this many tokens an image dominates the prompt and the memory of a request; other
// engines let users reach 16k tokens per image without noticing.
constexpr int64_t kWarnTokens = 4096;

const char* kUsage =
    "usage: qwenvl preprocess (--image PATH | --video PATH) [--model DIR] [--min-pixels N]\n"
    "                         [--max-pixels N] [--out FILE.npy] [--json] [video flags]\n"
    "  Decodes the image (JPEG, PNG, WebP, BMP; EXIF orientation, alpha on white), resizes it\n"
    "  as Qwen2.5-VL's processor does and prints its size, patch grid and token count.\n"
    "  --model DIR      read preprocessor_config.json from the checkpoint (default: built-in\n"
    "                   Qwen2.5-VL values, min 3136 / max 12845056 pixels)\n"
    "  --min-pixels N   --max-pixels N   override the pixel budget\n"
    "  --out FILE.npy   write pixel_values, float32 [patches, 1176]\n"
    "  --json           print one JSON object instead of text\n"
    "  --video PATH     a video file or a directory of frames instead: sampled, resized and\n"
    "                   patched as qwen-vl-utils + the video processor do (--fps, --nframes,\n"
    "                   --video-start, --video-end, --video-min-pixels, --video-max-pixels,\n"
    "                   --video-total-pixels as for generate); --out writes pixel_values_videos\n"
    "  --dump-frames F.npy  the sampled frames as decoded, float32 [frames, height, width, 3]\n";

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

int run_preprocess(int argc, char** argv) {
  std::vector<std::string> value_flags = {"image", "model", "min-pixels", "max-pixels",
                                          "out",   "video", "dump-frames"};
  value_flags.insert(value_flags.end(), video_value_flags().begin(), video_value_flags().end());
  Args args(argc, argv, value_flags, {"json", "help"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.positional().empty()) fail("unexpected argument '", args.positional()[0], "'");
  if (args.has("video")) {
    if (args.has("image")) fail("give --image or --video, not both");
    return run_preprocess_video(args);
  }
  const std::string path = args.require("image");

  PreprocessConfig config;
  config.max_pixels = 12845056;  // Qwen2.5-VL's preprocessor_config.json
  if (auto model = args.get("model")) config = load_preprocess_config(*model);
  config.min_pixels = args.get_int("min-pixels", config.min_pixels, 1, kMaxResizedPixels);
  config.max_pixels = args.get_int("max-pixels", config.max_pixels, 1, kMaxResizedPixels);
  check_pixel_bounds(config.min_pixels, config.max_pixels, "--min-pixels / --max-pixels");

  auto start = std::chrono::steady_clock::now();
  RgbImage image = load_image(path);
  const double decode_ms = ms_since(start);

  start = std::chrono::steady_clock::now();
  const int factor = config.patch_size * config.merge_size;
  const auto [height, width] =
      smart_resize(image.height, image.width, factor, config.min_pixels, config.max_pixels);
  const bool resized = height != image.height || width != image.width;
  RgbImage scaled = resized ? resize_bicubic(image, width, height) : RgbImage{};
  const double resize_ms = ms_since(start);

  start = std::chrono::steady_clock::now();
  ImagePatches patches = patchify_image(resized ? scaled : image, config);
  const double patchify_ms = ms_since(start);

  const int64_t merge_area = int64_t(config.merge_size) * config.merge_size;
  const int64_t tokens = patches.tokens() / merge_area;
  if (auto out = args.get("out"))
    write_npy(*out, patches.pixel_values.data<float>(),
              {patches.pixel_values.dim(0), patches.pixel_values.dim(1)});
  if (tokens > kWarnTokens)
    std::fprintf(stderr,
                 "qwenvl preprocess: warning: this image becomes %lld visual tokens (%dx%d "
                 "pixels); lower --max-pixels (e.g. %lld for at most 1280 tokens)\n",
                 static_cast<long long>(tokens), width, height,
                 static_cast<long long>(int64_t(factor) * factor * 1280));

  if (args.has("json")) {
    nlohmann::json j = {
        {"image", path},
        {"width", image.width},
        {"height", image.height},
        {"resized_width", width},
        {"resized_height", height},
        {"grid_thw", {patches.grid_t, patches.grid_h, patches.grid_w}},
        {"patches", patches.pixel_values.dim(0)},
        {"patch_dim", patches.pixel_values.dim(1)},
        {"tokens", tokens},
        {"min_pixels", config.min_pixels},
        {"max_pixels", config.max_pixels},
        {"decode_ms", decode_ms},
        {"resize_ms", resize_ms},
        {"patchify_ms", patchify_ms},
    };
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("image      %s\n", path.c_str());
  std::printf("size       %d x %d (width x height)\n", image.width, image.height);
  std::printf("resized    %d x %d%s\n", width, height, resized ? "" : " (unchanged)");
  std::printf("grid       t=%lld h=%lld w=%lld -> %lld patches of %lld values\n",
              static_cast<long long>(patches.grid_t), static_cast<long long>(patches.grid_h),
              static_cast<long long>(patches.grid_w),
              static_cast<long long>(patches.pixel_values.dim(0)),
              static_cast<long long>(patches.pixel_values.dim(1)));
  std::printf("tokens     %lld (after the %dx%d merge)\n", static_cast<long long>(tokens),
              config.merge_size, config.merge_size);
  std::printf("time       decode %.1f ms, resize %.1f ms, patchify %.1f ms\n", decode_ms, resize_ms,
              patchify_ms);
  return 0;
}

}  // namespace qwenvl::cli
