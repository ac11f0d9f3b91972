// preprocess_video / plan_video: a video file or a directory of frame images to pixel values.
// A file: probe (no decoding), plan the sampling and the size, then decode the sampled frames
// one by one, each resized (torchvision's antialiased bicubic) and written into its rows before
// the next is decoded. A directory: every frame, as qwen-vl-utils takes a list of images
// (fetch_image each: PIL bicubic to its own smart_resize; the count padded to even with the last
// frame), told to the model at --fps (2.0 by default).
#include <chrono>
#include <filesystem>

#include "core/error.h"
#include "vision/video.h"

namespace qwenvl {

namespace {

using Clock = std::chrono::steady_clock;

bool is_directory(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec);
}

struct DirectoryPlan {
  std::vector<std::string> files;
  VideoSampling sampling;
};

DirectoryPlan plan_directory(const std::string& dir, const VideoOptions& options,
                             const PreprocessConfig& config) {
  check_video_options(options);
  if (options.nframes || options.start || options.end)
    fail("--nframes, --video-start and --video-end apply to video files; the directory ", dir,
         " is taken frame by frame");
  DirectoryPlan plan;
  plan.files = list_frame_files(dir);
  const ImageHeader first = probe_image(read_image_file(plan.files.front()), plan.files.front());
  const int64_t min_pixels = options.min_pixels.value_or(kDirectoryMinPixels);
  const int64_t max_pixels = options.max_pixels.value_or(kDirectoryMaxPixels);
  check_pixel_bounds(min_pixels, max_pixels, "the video's frames");
  const auto [h, w] = smart_resize(first.height, first.width, config.patch_size * config.merge_size,
                                   min_pixels, max_pixels);
  VideoSampling& s = plan.sampling;
  const int64_t count = int64_t(plan.files.size());
  s.first_frame = 0;
  s.last_frame = count - 1;
  for (int64_t i = 0; i < count; ++i) s.indices.push_back(i);
  while (int64_t(s.indices.size()) % kFrameFactor) s.indices.push_back(count - 1);
  s.sample_fps = options.fps.value_or(kDefaultVideoFps);
  s.resized_height = h;
  s.resized_width = w;
  s.max_pixels = max_pixels;
  return plan;
}

VideoPatches preprocess_directory(const std::string& dir, const VideoOptions& options,
                                  const PreprocessConfig& config, DType dtype,
                                  const FrameSink& decoded) {
  DirectoryPlan plan = plan_directory(dir, options, config);
  VideoPatches out;
  out.sampling = plan.sampling;
  const VideoSampling& s = out.sampling;
  // The files alone: finish() repeats the last frame into the padded slot.
  VideoPatchWriter writer(int64_t(plan.files.size()), s.resized_height, s.resized_width, config,
                          dtype);
  const int64_t factor = config.patch_size * config.merge_size;
  for (size_t k = 0; k < plan.files.size(); ++k) {
    const auto start = Clock::now();
    const RgbImage frame = load_image(plan.files[k]);
    out.decode_ms += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (decoded) decoded(int64_t(k), frame);
    const auto [h, w] = smart_resize(frame.height, frame.width, int(factor),
                                     options.min_pixels.value_or(kDirectoryMinPixels),
                                     options.max_pixels.value_or(kDirectoryMaxPixels));
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
  out.frame_count = int64_t(plan.files.size());
  out.patches = writer.finish();
  return out;
}

}  // namespace

VideoSampling plan_video(const std::string& path, const VideoOptions& options,
                         const PreprocessConfig& config) {
  if (is_directory(path)) return plan_directory(path, options, config).sampling;
  return plan_video_sampling(probe_video(path), options, config.patch_size * config.merge_size);
}

VideoPatches preprocess_video(const std::string& path, const VideoOptions& options,
                              const PreprocessConfig& config, DType dtype,
                              const FrameSink& decoded) {
  if (is_directory(path)) return preprocess_directory(path, options, config, dtype, decoded);
  const auto start = Clock::now();
  const VideoInfo info = probe_video(path);
  VideoPatches out;
  out.frame_count = info.frame_count;
  out.video_fps = info.fps;
  out.sampling = plan_video_sampling(info, options, config.patch_size * config.merge_size);
  const VideoSampling& s = out.sampling;
  VideoPatchWriter writer(int64_t(s.indices.size()), s.resized_height, s.resized_width, config,
                          dtype);
  double resize_ms = 0;
  decode_video_frames(path, info, s.indices, [&](int64_t k, const RgbImage& frame) {
    const auto resize_start = Clock::now();
    if (decoded) decoded(k, frame);
    writer.write(k, resize_bicubic_antialias(frame, s.resized_width, s.resized_height));
    resize_ms += std::chrono::duration<double, std::milli>(Clock::now() - resize_start).count();
  });
  for (const int64_t index : s.indices)
    out.frame_seconds.push_back(info.frame_seconds[size_t(index)]);
  out.decode_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - start).count() - resize_ms;
  out.patches = writer.finish();
  return out;
}

}  // namespace qwenvl
