// plan_video / preprocess_video: a video file or a directory of frame images to pixel values.
// A file: probe (no decoding), plan the sampling and the size, then decode the sampled frames
// one by one, each resized (torchvision's antialiased bicubic) and written into its rows before
// the next is decoded. A directory: every frame, as qwen-vl-utils takes a list of images
// (fetch_image each: PIL bicubic to its own smart_resize; the count padded to even with the last
// frame), told to the model at --fps (2.0 by default).
#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "vision/video.h"

namespace qwenvl {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

bool is_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

std::pair<int, int> directory_frame_size(int height, int width, const VideoOptions& options,
                                         const PreprocessConfig& config) {
  return smart_resize(height, width, config.patch_size * config.merge_size,
                      options.min_pixels.value_or(kDirectoryMinPixels),
                      options.max_pixels.value_or(kDirectoryMaxPixels));
}

VideoOptions lowered_options(const VideoOptions& options, int64_t max_pixels) {
  VideoOptions out = options;
  out.max_pixels = std::min(options.max_pixels.value_or(max_pixels), max_pixels);
  return out;
}

void plan_directory(VideoPlan& plan, const PreprocessConfig& config) {
  const VideoOptions& options = plan.options;
  if (options.nframes || options.start || options.end)
    fail("--nframes, --video-start and --video-end apply to video files; the directory ", plan.path,
         " is taken frame by frame");
  check_pixel_bounds(options.min_pixels.value_or(kDirectoryMinPixels),
                     options.max_pixels.value_or(kDirectoryMaxPixels), "the video's frames");
  plan.files = list_frame_files(plan.path);
  const ImageHeader first = probe_image(read_image_file(plan.files.front()), plan.files.front());
  plan.height = first.height;
  plan.width = first.width;
  const auto [h, w] = directory_frame_size(first.height, first.width, options, config);
  VideoSampling& s = plan.sampling;
  const int64_t count = int64_t(plan.files.size());
  s.first_frame = 0;
  s.last_frame = count - 1;
  for (int64_t i = 0; i < count; ++i) s.indices.push_back(i);
  while (int64_t(s.indices.size()) % kFrameFactor) s.indices.push_back(count - 1);
  s.sample_fps = options.fps.value_or(kDefaultVideoFps);
  s.resized_height = h;
  s.resized_width = w;
  s.max_pixels = options.max_pixels.value_or(kDirectoryMaxPixels);
}

VideoPatches preprocess_directory(const VideoPlan& plan, const PreprocessConfig& config,
                                  DType dtype, const FrameSink& decoded) {
  VideoPatches out;
  out.sampling = plan.sampling;
  out.frame_count = int64_t(plan.files.size());
  const VideoSampling& s = out.sampling;
  // The files alone: finish() repeats the last frame into the padded slot.
  VideoPatchWriter writer(int64_t(plan.files.size()), s.resized_height, s.resized_width, config,
                          dtype);
  for (size_t k = 0; k < plan.files.size(); ++k) {
    const auto start = Clock::now();
    const RgbImage frame = load_image(plan.files[k]);
    out.decode_ms += ms_since(start);
    if (decoded) decoded(int64_t(k), frame);
    const auto [h, w] = directory_frame_size(frame.height, frame.width, plan.options, config);
    if (h != s.resized_height || w != s.resized_width)
      fail("frame ", plan.files[k], " resizes to ", w, "x", h, " but the first frame to ",
           s.resized_width, "x", s.resized_height, "; a video's frames must share one size");
    writer.write(int64_t(k),
                 (h == frame.height && w == frame.width) ? frame : resize_bicubic(frame, w, h));
    out.frame_seconds.push_back(double(k) / s.sample_fps);
  }
  // The count padded to even: qwen-vl-utils appends the last frame; the writer repeats it.
  for (size_t k = plan.files.size(); k < s.indices.size(); ++k)
    out.frame_seconds.push_back(out.frame_seconds.back());
  out.patches = writer.finish();
  return out;
}

VideoPatches preprocess_file(const VideoPlan& plan, const PreprocessConfig& config, DType dtype,
                             const FrameSink& decoded) {
  const auto start = Clock::now();
  VideoPatches out;
  out.frame_count = plan.info.frame_count;
  out.video_fps = plan.info.fps;
  out.sampling = plan.sampling;
  const VideoSampling& s = out.sampling;
  VideoPatchWriter writer(int64_t(s.indices.size()), s.resized_height, s.resized_width, config,
                          dtype);
  double resize_ms = 0;
  decode_video_frames(plan.path, plan.info, s.indices, [&](int64_t k, const RgbImage& frame) {
    const auto resize_start = Clock::now();
    if (decoded) decoded(k, frame);
    writer.write(k, resize_bicubic_antialias(frame, s.resized_width, s.resized_height));
    resize_ms += ms_since(resize_start);
  });
  for (const int64_t index : s.indices)
    out.frame_seconds.push_back(plan.info.frame_seconds[size_t(index)]);
  out.decode_ms = ms_since(start) - resize_ms;
  out.patches = writer.finish();
  return out;
}

}  // namespace

int64_t VideoPlan::tokens(const PreprocessConfig& config) const {
  const int64_t t = config.temporal_patch_size;
  const int64_t grid_t = (int64_t(sampling.indices.size()) + t - 1) / t;
  return grid_t * (sampling.resized_height / config.patch_size) *
         (sampling.resized_width / config.patch_size) /
         (int64_t(config.merge_size) * config.merge_size);
}

VideoPlan plan_video(const std::string& path, const VideoOptions& options,
                     const PreprocessConfig& config) {
  check_video_options(options);
  VideoPlan plan;
  plan.path = path;
  plan.options = options;
  plan.directory = is_directory(path);
  if (plan.directory) {
    plan_directory(plan, config);
  } else {
    plan.info = probe_video(path);
    plan.height = plan.info.height;
    plan.width = plan.info.width;
    plan.sampling = plan_video_sampling(plan.info, options, config.patch_size * config.merge_size);
  }
  return plan;
}

int64_t video_min_frame_pixels(const VideoPlan& plan) {
  return plan.options.min_pixels.value_or(plan.directory ? kDirectoryMinPixels : kVideoMinPixels);
}

std::pair<int, int> video_frame_size(const VideoPlan& plan, int64_t max_pixels,
                                     const PreprocessConfig& config) {
  const VideoOptions options = lowered_options(plan.options, max_pixels);
  if (plan.directory) return directory_frame_size(plan.height, plan.width, options, config);
  // What plan_video_sampling reads of a probe, without copying its per-frame index.
  VideoInfo info;
  info.width = plan.info.width;
  info.height = plan.info.height;
  info.fps = plan.info.fps;
  info.frame_count = plan.info.frame_count;
  const VideoSampling s = plan_video_sampling(info, options, config.patch_size * config.merge_size);
  return {s.resized_height, s.resized_width};
}

void limit_video_frame_pixels(VideoPlan& plan, int64_t max_pixels, const PreprocessConfig& config) {
  plan.options = lowered_options(plan.options, max_pixels);
  const auto [h, w] = video_frame_size(plan, max_pixels, config);
  // The same frames (their count does not depend on max_pixels), resized smaller.
  plan.sampling.resized_height = h;
  plan.sampling.resized_width = w;
  plan.sampling.max_pixels =
      plan.directory ? *plan.options.max_pixels
                     : video_frame_max_pixels(plan.options, int64_t(plan.sampling.indices.size()));
}

VideoPatches preprocess_video(const VideoPlan& plan, const PreprocessConfig& config, DType dtype,
                              const FrameSink& decoded) {
  return plan.directory ? preprocess_directory(plan, config, dtype, decoded)
                        : preprocess_file(plan, config, dtype, decoded);
}

VideoPatches preprocess_video(const std::string& path, const VideoOptions& options,
                              const PreprocessConfig& config, DType dtype,
                              const FrameSink& decoded) {
  return preprocess_video(plan_video(path, options, config), config, dtype, decoded);
}

}  // namespace qwenvl
