// `qwenvl preprocess --video`: what a video becomes (sampled frames, their times, the size and
// grid, the token count, the time taken) and optionally pixel_values_videos as .npy, for
// comparisons with qwen-vl-utils + transformers (tools/device/video_checks.py), and with
// --dump-frames the sampled frames as decoded, float32 [frames, height, width, 3] of 0..255.
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/npy.h"
#include "cli/video_flags.h"
#include "core/error.h"
#include "vision/preprocess.h"
#include "vision/video.h"

namespace qwenvl::cli {

int run_preprocess_video(const Args& args) {
  const std::string path = args.require("video");
  PreprocessConfig config;
  if (auto model = args.get("model")) config = load_preprocess_config(*model);
  if (args.has("min-pixels") || args.has("max-pixels"))
    fail("for a video use --video-min-pixels / --video-max-pixels");
  const VideoOptions options = parse_video_options(args);

  // --dump-frames keeps every sampled frame as decoded (for comparisons only; a normal run
  // holds one frame at a time).
  std::vector<float> frames;
  int frame_width = 0, frame_height = 0;
  FrameSink keep;
  if (args.has("dump-frames"))
    keep = [&](int64_t, const RgbImage& frame) {
      if (frames.empty()) frame_width = frame.width, frame_height = frame.height;
      if (frame.width != frame_width || frame.height != frame_height)
        fail("--dump-frames: the video's frames change size; dump a shorter part");
      frames.insert(frames.end(), frame.pixels.begin(), frame.pixels.end());
    };
  const auto start = std::chrono::steady_clock::now();
  const VideoPatches video = preprocess_video(path, options, config, DType::F32, keep);
  const double total_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  const ImagePatches& p = video.patches;
  const int64_t tokens = p.tokens() / (int64_t(config.merge_size) * config.merge_size);
  if (auto out = args.get("out"))
    write_npy(*out, p.pixel_values.data<float>(), {p.pixel_values.dim(0), p.pixel_values.dim(1)});

  if (auto out = args.get("dump-frames")) {
    const int64_t count = int64_t(frames.size()) / (int64_t(frame_width) * frame_height * 3);
    write_npy(*out, frames.data(), {count, frame_height, frame_width, 3});
  }

  const VideoSampling& s = video.sampling;
  if (args.has("json")) {
    const nlohmann::json j = {
        {"video", path},
        {"frames", s.indices},
        {"frame_seconds", video.frame_seconds},
        {"frame_count", video.frame_count},
        {"video_fps", video.video_fps},
        {"first_frame", s.first_frame},
        {"last_frame", s.last_frame},
        {"sample_fps", s.sample_fps},
        {"second_per_grid", float(double(config.temporal_patch_size) / s.sample_fps)},
        {"resized_width", s.resized_width},
        {"resized_height", s.resized_height},
        {"max_pixels", s.max_pixels},
        {"video_grid_thw", {p.grid_t, p.grid_h, p.grid_w}},
        {"patches", p.pixel_values.dim(0)},
        {"tokens", tokens},
        {"decode_ms", video.decode_ms},
        {"total_ms", total_ms},
    };
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("video      %s\n", path.c_str());
  std::printf("frames     %zu sampled (frames %lld..%lld), %.4g fps to the model\n",
              s.indices.size(), static_cast<long long>(s.first_frame),
              static_cast<long long>(s.last_frame), s.sample_fps);
  std::printf("resized    %d x %d (width x height)\n", s.resized_width, s.resized_height);
  std::printf("grid       t=%lld h=%lld w=%lld -> %lld patches, %lld tokens\n",
              static_cast<long long>(p.grid_t), static_cast<long long>(p.grid_h),
              static_cast<long long>(p.grid_w), static_cast<long long>(p.pixel_values.dim(0)),
              static_cast<long long>(tokens));
  std::printf("time       decode %.1f ms, all %.1f ms\n", video.decode_ms, total_ms);
  return 0;
}

}  // namespace qwenvl::cli
