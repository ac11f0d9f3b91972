// Which frames of a video are sampled and at which size, as qwen-vl-utils' vision_process.py
// computes them (smart_nframes, calculate_video_frame_range, the frame indices, fetch_video's
// max_pixels and smart_resize), operation for operation in doubles where Python uses floats:
// round() is half to even (std::nearbyint), and int / int is a double division.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "vision/video.h"

namespace qwenvl {

namespace {

double round_by_factor(double number, int factor) {
  return std::nearbyint(number / factor) * factor;
}
double ceil_by_factor(double number, int factor) { return std::ceil(number / factor) * factor; }
double floor_by_factor(double number, int factor) { return std::floor(number / factor) * factor; }

// qwen-vl-utils' smart_resize (not transformers'): each side at least `factor`, and max_pixels
// may be fractional (the budget shared over the frames).
std::pair<int, int> video_smart_resize(int height, int width, int factor, double min_pixels,
                                       double max_pixels) {
  if (height <= 0 || width <= 0) fail("cannot resize an empty frame (", width, "x", height, ")");
  const double ratio = double(std::max(height, width)) / double(std::min(height, width));
  if (ratio > 200)
    fail("a video of ", width, "x", height, " has an aspect ratio of ", ratio,
         "; Qwen2.5-VL accepts at most 200:1");
  const double h = height, w = width, f = factor, area = double(int64_t(height) * width);
  double h_bar = std::max(f, round_by_factor(h, factor));
  double w_bar = std::max(f, round_by_factor(w, factor));
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(area / max_pixels);
    h_bar = std::max(f, floor_by_factor(h / beta, factor));
    w_bar = std::max(f, floor_by_factor(w / beta, factor));
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(min_pixels / area);
    h_bar = ceil_by_factor(h * beta, factor);
    w_bar = ceil_by_factor(w * beta, factor);
  }
  return {int(h_bar), int(w_bar)};
}

// torch's linspace kernel runs Vectorized<float> over pairs of vectors, then scalars for the
// rest; 16 floats per vector where torch picks its AVX-512 kernels (x86 servers), 8 with AVX2.
constexpr int64_t kTorchFloatVector = 16;

// fetch_video's per-frame limit. It is a float in Python (total_pixels / nframes * 2), and
// smart_resize compares and divides by it unrounded, so it stays a double here.
double frame_max_pixels(const VideoOptions& options, int64_t nframes) {
  const double min_pixels = double(options.min_pixels.value_or(kVideoMinPixels));
  double max_pixels =
      std::max(std::min(double(kVideoMaxPixels),
                        double(options.total_pixels) / double(nframes) * kFrameFactor),
               std::floor(min_pixels * 1.05));
  if (options.max_pixels) max_pixels = std::min(double(*options.max_pixels), max_pixels);
  return max_pixels;
}

}  // namespace

void check_video_options(const VideoOptions& o) {
  if (o.fps && o.nframes) fail("give a video's fps or its nframes, not both");
  if (o.fps && !(*o.fps > 0 && *o.fps <= 1000))
    fail("video fps must be in (0, 1000], got ", *o.fps);
  if (o.nframes && (*o.nframes < kFrameFactor || *o.nframes > kFpsMaxFrames))
    fail("video nframes must be in [", kFrameFactor, ", ", kFpsMaxFrames, "], got ", *o.nframes);
  for (const auto* p : {&o.min_pixels, &o.max_pixels})
    if (*p && (**p < 1 || **p > kMaxResizedPixels))
      fail("video min/max pixels must be in [1, ", kMaxResizedPixels, "], got ", **p);
  if (o.min_pixels && o.max_pixels && *o.min_pixels > *o.max_pixels)
    fail("video min_pixels (", *o.min_pixels, ") exceeds max_pixels (", *o.max_pixels, ")");
  if (o.total_pixels < 1 || o.total_pixels > int64_t(1) << 40)
    fail("video total_pixels must be in [1, 2^40], got ", o.total_pixels);
  for (const auto* t : {&o.start, &o.end})
    if (*t && !(**t >= 0 && **t <= 1e7))
      fail("video start/end must be in [0, 1e7] seconds, got ", **t);
  if (o.start && o.end && !(*o.start < *o.end))
    fail("video start (", *o.start, " s) must come before its end (", *o.end, " s)");
}

int64_t smart_nframes(const VideoOptions& options, int64_t total_frames, double video_fps) {
  double nframes = 0;
  if (options.nframes) {
    nframes = round_by_factor(double(*options.nframes), kFrameFactor);
  } else {
    const double fps = options.fps.value_or(kDefaultVideoFps);
    const double min_frames = ceil_by_factor(double(kFpsMinFrames), kFrameFactor);
    const double max_frames =
        floor_by_factor(double(std::min(kFpsMaxFrames, total_frames)), kFrameFactor);
    nframes = double(total_frames) / video_fps * fps;
    nframes = std::min(std::min(std::max(nframes, min_frames), max_frames), double(total_frames));
    nframes = floor_by_factor(nframes, kFrameFactor);
  }
  if (!(nframes >= kFrameFactor && nframes <= double(total_frames)))
    fail("a video of ", total_frames, " frames cannot give ", int64_t(nframes),
         " sampled frames: the count must be in [", kFrameFactor, ", ", total_frames,
         "] (lower --nframes or --fps, or widen --video-start/--video-end)");
  return int64_t(nframes);
}

std::vector<int64_t> linspace_indices(int64_t first, int64_t last, int64_t count) {
  QWENVL_CHECK(count >= 1 && first <= last && last < (int64_t(1) << 24));
  std::vector<int64_t> out(static_cast<size_t>(count));
  const float start = float(first), end = float(last);
  if (count == 1) {
    out[0] = first;
    return out;
  }
  const float step = (end - start) / float(count - 1);
  const int64_t halfway = count / 2;
  // linspace_kernel's scalar and vector lambdas: below `halfway` from the start, above it from
  // the end; a vector is placed by its first element and filled with base + j * step.
  auto scalar = [&](int64_t i) {
    return i < halfway ? start + step * float(i) : end - step * float(count - i - 1);
  };
  auto vector = [&](int64_t i) {
    const float base = scalar(i);
    for (int64_t j = 0; j < kTorchFloatVector; ++j)
      out[size_t(i + j)] = int64_t(std::nearbyint(base + float(j) * step));
  };
  int64_t i = 0;
  for (; i + 2 * kTorchFloatVector <= count; i += 2 * kTorchFloatVector) {
    vector(i);
    vector(i + kTorchFloatVector);
  }
  for (; i < count; ++i) out[size_t(i)] = int64_t(std::nearbyint(scalar(i)));
  return out;
}

int64_t video_frame_max_pixels(const VideoOptions& options, int64_t nframes) {
  return int64_t(frame_max_pixels(options, nframes));
}

VideoSampling plan_video_sampling(const VideoInfo& info, const VideoOptions& options, int factor) {
  check_video_options(options);
  if (info.frame_count <= 0) fail("the video has no frames");
  if (!(info.fps > 0)) fail("the video has no frame rate");
  VideoSampling s;
  // calculate_video_frame_range
  s.first_frame = 0;
  s.last_frame = info.frame_count - 1;
  if (options.start || options.end) {
    const double max_duration = double(info.frame_count) / info.fps;
    if (options.start)
      s.first_frame = int64_t(std::ceil(std::clamp(*options.start, 0.0, max_duration) * info.fps));
    if (options.end)
      s.last_frame =
          std::min(int64_t(std::floor(std::clamp(*options.end, 0.0, max_duration) * info.fps)),
                   info.frame_count - 1);
    if (s.first_frame >= s.last_frame)
      fail("the video range starts at frame ", s.first_frame, " and ends at frame ", s.last_frame,
           "; the video has ", info.frame_count, " frames at ", info.fps,
           " fps (check --video-start/--video-end)");
  }
  const int64_t range = s.last_frame - s.first_frame + 1;
  const int64_t nframes = smart_nframes(options, range, info.fps);
  s.indices = linspace_indices(s.first_frame, s.last_frame, nframes);
  s.sample_fps = double(nframes) / std::max(double(range), 1e-6) * info.fps;

  const double min_pixels = double(options.min_pixels.value_or(kVideoMinPixels));
  const double max_pixels = frame_max_pixels(options, nframes);
  s.max_pixels = int64_t(max_pixels);
  const auto [h, w] = video_smart_resize(info.height, info.width, factor, min_pixels, max_pixels);
  s.resized_height = h;
  s.resized_width = w;
  return s;
}

}  // namespace qwenvl
