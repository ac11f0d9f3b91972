#pragma once
// The video flags shared by `generate` and `preprocess`: --fps, --nframes, --video-min-pixels,
// --video-max-pixels, --video-total-pixels, --video-start, --video-end, each range-checked here
// and applied to every --video of the command; and the JSON that reports what a video became.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "runtime/chat_request.h"
#include "vision/video.h"

namespace qwenvl::cli {

// The flag names above (without "--"), for Args' list of value flags.
const std::vector<std::string>& video_value_flags();

// VideoOptions from the flags; Error naming a flag out of range or a contradictory pair.
VideoOptions parse_video_options(const Args& args);

// {path, frames, frame_seconds, sample_fps, second_per_grid, resized_width, resized_height,
// grid_thw, decode_ms}
nlohmann::json video_json(const PreparedVideoInfo& video, const VisionGrid& grid,
                          float second_per_grid);

// `qwenvl preprocess --video`: one video through sampling, decoding, resize and patching
// (cli/preprocess_video.cpp).
int run_preprocess_video(const Args& args);

}  // namespace qwenvl::cli
