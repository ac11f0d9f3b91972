#include "cli/video_flags.h"

#include "core/error.h"

namespace qwenvl::cli {

const std::vector<std::string>& video_value_flags() {
  static const std::vector<std::string> flags = {
      "fps",         "nframes",  "video-min-pixels", "video-max-pixels", "video-total-pixels",
      "video-start", "video-end"};
  return flags;
}

VideoOptions parse_video_options(const Args& args) {
  VideoOptions o;
  if (args.has("fps")) o.fps = args.get_double("fps", 0, 1e-3, 1000);
  if (args.has("nframes")) o.nframes = args.get_int("nframes", 0, kFrameFactor, kFpsMaxFrames);
  if (args.has("fps") && args.has("nframes")) fail("give --fps or --nframes, not both");
  if (args.has("video-min-pixels"))
    o.min_pixels = args.get_int("video-min-pixels", 0, 1, kMaxResizedPixels);
  if (args.has("video-max-pixels"))
    o.max_pixels = args.get_int("video-max-pixels", 0, 1, kMaxResizedPixels);
  o.total_pixels = args.get_int("video-total-pixels", kVideoTotalPixels, 1, int64_t(1) << 40);
  if (args.has("video-start")) o.start = args.get_double("video-start", 0, 0, 1e7);
  if (args.has("video-end")) o.end = args.get_double("video-end", 0, 0, 1e7);
  check_video_options(o);
  return o;
}

nlohmann::json video_json(const PreparedVideoInfo& video, const VisionGrid& grid,
                          float second_per_grid) {
  return {
      {"path", video.path},
      {"frames", video.sampling.indices},
      {"frame_seconds", video.frame_seconds},
      {"sample_fps", video.sampling.sample_fps},
      {"second_per_grid", second_per_grid},
      {"resized_width", video.sampling.resized_width},
      {"resized_height", video.sampling.resized_height},
      {"grid_thw", {grid.t, grid.h, grid.w}},
      {"decode_ms", video.decode_ms},
  };
}

}  // namespace qwenvl::cli
