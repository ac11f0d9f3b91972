#pragma once
// Video input as qwen-vl-utils prepares it (vision_process.py: fetch_video with the decord /
// torchcodec readers): which frames are sampled (smart_nframes, calculate_video_frame_range,
// torch.linspace(...).round()), the size every frame is resized to (the total-pixels budget shared
// over the frames, then smart_resize), torchvision's antialiased bicubic resize, and the frames
// paired into temporal patches. Frames flow one at a time: a file is probed (size, rotation, the
// presentation time of every frame, from its packets), then only the sampled frames are decoded
// (seek to the keyframe before, decode forward) and each is resized and written into its rows of
// pixel_values before the next is decoded. docs/VIDEO.md lists where transformers differs.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace qwenvl {

// qwen-vl-utils' constants (vision_process.py).
inline constexpr int kFrameFactor = 2;           // FRAME_FACTOR: frames come in temporal pairs
inline constexpr double kDefaultVideoFps = 2.0;  // FPS
inline constexpr int64_t kFpsMinFrames = 4;      // FPS_MIN_FRAMES
inline constexpr int64_t kFpsMaxFrames = 768;    // FPS_MAX_FRAMES
inline constexpr int64_t kVideoMinPixels = 128 * 28 * 28;  // VIDEO_MIN_PIXELS
inline constexpr int64_t kVideoMaxPixels = 768 * 28 * 28;  // VIDEO_MAX_PIXELS
// VIDEO_TOTAL_PIXELS = int(float(128000 * 28 * 28 * 0.9)): 128k tokens' worth of pixels, 90%.
inline constexpr int64_t kVideoTotalPixels = 90'316'800;
// Frames of a directory video (qwen-vl-utils takes any number; every frame is kept, so we cap).
inline constexpr int64_t kMaxDirectoryFrames = kFpsMaxFrames;
inline constexpr int64_t kDirectoryMinPixels = 4 * 28 * 28;      // MIN_PIXELS
inline constexpr int64_t kDirectoryMaxPixels = 16384 * 28 * 28;  // MAX_PIXELS

// What a request asks of one video (the element's keys in qwen-vl-utils).
struct VideoOptions {
  std::optional<double> fps;       // "fps": frames sampled per second (2.0 when neither is given)
  std::optional<int64_t> nframes;  // "nframes": instead of fps, rounded to an even count
  // "min_pixels" / "max_pixels". For a file, min_pixels defaults to VIDEO_MIN_PIXELS and
  // max_pixels only lowers the budget's limit; a directory's frames are images to qwen-vl-utils
  // (fetch_image), with the image defaults (kDirectoryMinPixels, kDirectoryMaxPixels).
  std::optional<int64_t> min_pixels, max_pixels;
  int64_t total_pixels = kVideoTotalPixels;
  std::optional<double> start, end;  // "video_start" / "video_end", seconds
};

// What probe_video reads from a file's headers and packets (no frame decoded).
struct VideoInfo {
  int width = 0, height = 0;  // upright: rotation already applied
  int rotation = 0;           // clockwise degrees applied to each decoded frame: 0, 90, 180, 270
  double fps = 0;             // the stream's average frame rate (decord's get_avg_fps)
  int64_t frame_count = 0;    // frames in the stream, counted from its packets
  std::vector<double> frame_seconds;  // presentation time of each frame, ascending
  // The same in the stream's time base, and the keyframes' (decode_video_frames seeks by them).
  std::vector<int64_t> frame_pts, keyframe_pts;
  double duration() const { return fps > 0 ? double(frame_count) / fps : 0.0; }
};

// Which frames a video contributes and at which size.
struct VideoSampling {
  int64_t first_frame = 0, last_frame = 0;  // calculate_video_frame_range
  std::vector<int64_t> indices;             // frames sampled, ascending
  double sample_fps = 0;  // nframes / frames in range * video fps: the rate the model is told
  int resized_height = 0, resized_width = 0;
  int64_t max_pixels = 0;  // the per-frame limit that smart_resize used
};

// smart_nframes: frames to sample from `total_frames` frames at `video_fps`. Error outside
// [2, total_frames], as qwen-vl-utils raises.
int64_t smart_nframes(const VideoOptions& options, int64_t total_frames, double video_fps);

// torch.linspace(first, last, count) in float32, as torch's CPU kernel computes it (the first
// half from `first`, the second from `last`), then round() half to even.
std::vector<int64_t> linspace_indices(int64_t first, int64_t last, int64_t count);

// The per-frame pixel limit: max(min(VIDEO_MAX_PIXELS, total_pixels / nframes * 2),
// int(min_pixels * 1.05)), lowered to options.max_pixels when that is smaller.
int64_t video_frame_max_pixels(const VideoOptions& options, int64_t nframes);

// Everything above for a video of `info`'s frames and size; `factor` is patch · merge (28).
VideoSampling plan_video_sampling(const VideoInfo& info, const VideoOptions& options, int factor);

// Error unless every option is in range: fps in (0, 1000], nframes in [2, FPS_MAX_FRAMES], pixels
// in [1, kMaxResizedPixels], start/end in [0, 1e7] with start < end; fps and nframes exclusive.
void check_video_options(const VideoOptions& options);

// The headers and packet index of a video file (mp4/mov, mkv/webm, avi through libavformat),
// opened only if it is a regular file and only through our own reads of it (no FFmpeg protocol,
// no other file a playlist names). Error for a file that is not a video we can read.
VideoInfo probe_video(const std::string& path);

// Decodes the frames `indices` (ascending) of `path` into upright RGB, calling `sink(k, frame)`
// for the k-th of them, in order, with one decoded frame alive at a time. `info` is probe_video's.
using FrameSink = std::function<void(int64_t k, const RgbImage& frame)>;
void decode_video_frames(const std::string& path, const VideoInfo& info,
                         const std::vector<int64_t>& indices, const FrameSink& sink);

// The frame files of a directory video: regular files with an image extension (jpg, jpeg, png,
// webp, bmp), sorted by name. Error when there are none or more than kMaxDirectoryFrames.
std::vector<std::string> list_frame_files(const std::string& dir);

// torchvision.transforms.functional.resize(uint8 tensor, [height, width], BICUBIC,
// antialias=True): the frame is cast to float32, resized by torch's separable antialiased
// bicubic (width first, then height, a = -0.5, float32 weights and sums), clamped to [0, 255],
// rounded half to even and cast back to uint8. Not Pillow's fixed-point resize (resize_bicubic).
RgbImage resize_bicubic_antialias(const RgbImage& image, int width, int height);

// A video's pixel values, filled one frame at a time: frame k of the sampled frames goes into
// temporal patch k / temporal_patch_size, slot k % temporal_patch_size. Rows are in
// (t, h-block, w-block, h-in-merge, w-in-merge) order, each (channel, frame, y, x), as
// transformers' Qwen2VLVideoProcessor lays them out. Values are (x - 255·mean) / (255·std) in
// float32, the video processor's fused rescale and normalize.
class VideoPatchWriter {
 public:
  VideoPatchWriter(int64_t frames, int height, int width, const PreprocessConfig& config,
                   DType dtype);
  // `resized` must be height x width.
  void write(int64_t k, const RgbImage& resized);
  // Fills the slots after the last written frame with copies of it (an odd count's last temporal
  // patch, as the processor repeats the last frame) and hands the patches over.
  ImagePatches finish();

 private:
  PreprocessConfig config_;
  DType dtype_;
  int64_t frames_;
  int64_t written_ = 0;
  ImagePatches out_;
  float table_[3][256];
  uint16_t table16_[3][256];
};

// A whole video, sampled, decoded, resized and patched.
struct VideoPatches {
  ImagePatches patches;
  VideoSampling sampling;
  std::vector<double> frame_seconds;  // presentation time of each sampled frame
  int64_t frame_count = 0;            // of the whole file (a directory: its images)
  double video_fps = 0;               // the file's average frame rate (a directory: 0)
  double decode_ms = 0;               // demuxing, decoding and colour conversion
};

// A video's sampling decided and nothing decoded: what plan_video read (a file's packet index,
// a directory's frame list) so that preprocess_video does not read it again.
struct VideoPlan {
  std::string path;
  VideoOptions options;
  bool directory = false;
  VideoInfo info;                  // a file's probe
  std::vector<std::string> files;  // a directory's frame images, sorted
  int height = 0, width = 0;       // upright frame size before resizing (a directory: the first's)
  VideoSampling sampling;
  // merged tokens: ceil(frames / temporal) · (h / patch) · (w / patch) / merge²
  int64_t tokens(const PreprocessConfig& config) const;
};

// `path` is a video file or a directory of frame images. Error where it cannot be read or sampled
// (no frame is decoded; a file's packets are read once).
VideoPlan plan_video(const std::string& path, const VideoOptions& options,
                     const PreprocessConfig& config);

// A request's token budget (runtime/image_token_budget.h) downscales a video by lowering its
// per-frame pixel limit, as a smaller total_pixels would: video_min_frame_pixels is the limit it
// may not go below (the video's min_pixels); video_frame_size the (height, width) a limit of
// max_pixels gives by the plan's own rule (qwen-vl-utils' video smart_resize for a file, the
// image one for a directory's frames); limit_video_frame_pixels applies it to the plan
// (options.max_pixels lowered, the same frames, resized).
int64_t video_min_frame_pixels(const VideoPlan& plan);
std::pair<int, int> video_frame_size(const VideoPlan& plan, int64_t max_pixels,
                                     const PreprocessConfig& config);
void limit_video_frame_pixels(VideoPlan& plan, int64_t max_pixels, const PreprocessConfig& config);

// Decodes, resizes and patches the plan's frames. `decoded`, when given, sees each sampled frame
// as decoded (upright RGB, before the resize), for comparisons with Python.
VideoPatches preprocess_video(const VideoPlan& plan, const PreprocessConfig& config,
                              DType dtype = DType::F32, const FrameSink& decoded = {});

// plan_video + preprocess_video.
VideoPatches preprocess_video(const std::string& path, const VideoOptions& options,
                              const PreprocessConfig& config, DType dtype = DType::F32,
                              const FrameSink& decoded = {});

}  // namespace qwenvl
