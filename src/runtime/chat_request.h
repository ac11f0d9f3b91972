#pragma once
// A chat request as a user states it (system text, images, videos, the prompt) turned into what the
// model takes: prompt ids with each image's pads expanded and the images' pixel values. The work is
// bounded before it is done: every image's token count comes from its header (probe_image +
// smart_resize, no pixels decoded), the prompt that those counts make is checked against the
// context, and only then are the images decoded and preprocessed, one at a time. A video's token
// count comes from its packet index and sampling plan (plan_video), also before any decoding. The
// CLI and the server both build their requests here.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "core/dtype.h"
#include "model/qwen2_5_vl.h"
#include "text/chat.h"
#include "text/tokenizer.h"
#include "vision/preprocess.h"
#include "vision/video.h"

namespace qwenvl {

// One image of a request: bytes already in memory (a server's upload) or a file read when needed.
struct ImageSource {
  std::string name;  // for messages: the path, or a name the caller gives
  std::string path;  // read when `bytes` is empty
  std::vector<uint8_t> bytes;
  // This image's own resize bounds (Qwen's per-image min_pixels / max_pixels); 0: the request's.
  int64_t min_pixels = 0, max_pixels = 0;
};

// One video of a request: a file (mp4/mov, mkv/webm, avi) or a directory of frame images.
struct VideoSource {
  std::string path;
  VideoOptions options;
};

struct ChatRequest {
  std::optional<std::string> system;
  std::vector<ImageSource> images;  // in the user turn, before the text, in this order
  std::vector<VideoSource> videos;  // after the images, before the text, in this order
  std::string text;
  // A whole conversation instead (a server's messages): when not empty, system and text are
  // unused and the Image parts, in order, are `images`.
  std::vector<ChatMessage> messages;
  PreprocessConfig preprocess;  // min/max pixels of this request
  // Merged tokens all images and videos may take together (0: no cap): over it, images and video
  // frames are downscaled, all by the same factor of their pixels (image_token_budget.h).
  int64_t max_image_tokens = 0;
  int64_t max_new_tokens = 256;
  int64_t max_context = 32768;  // prompt + generated tokens must fit
};

// Caps on a request's images, whatever the context would allow.
inline constexpr int64_t kMaxImagesPerRequest = 256;
inline constexpr int64_t kMaxVideosPerRequest = 16;

// What a video became, for reports (--json): its sampling and each sampled frame's time.
struct PreparedVideoInfo {
  std::string path;
  VideoSampling sampling;
  std::vector<double> frame_seconds;
  double decode_ms = 0;  // demuxing, decoding and colour conversion
};

struct PreparedPrompt {
  std::vector<int32_t> prompt_ids;
  std::vector<ImageInput> images;
  std::vector<ImageInput> videos;
  std::vector<float> video_seconds_per_grid;  // temporal_patch_size / sampled fps, per video
  std::vector<PreparedVideoInfo> video_info;
  // Of the largest image or video piece (VisionTower::piece_patches): the vision workspace's.
  int64_t max_image_patches = 0;
  int64_t image_tokens = 0;  // merged tokens of all images and videos
  double image_load_ms = 0;  // reading and decoding the image files
  double video_ms = 0;       // sampling, decoding, resizing and patching the videos
  // One line per image or video downscaled to fit max_image_tokens, for the user to see.
  std::vector<std::string> notices;
};

// Checks and builds a request. Errors, before any image or video frame is decoded: too many
// images or videos, an image whose header is unreadable or too large, a video that cannot be
// probed or sampled, a prompt (with the images' and videos' tokens) that does not leave
// max_new_tokens in max_context.
PreparedPrompt prepare_chat_request(const ChatRequest& request, const Tokenizer& tokenizer,
                                    const ModelConfig& config, DType pixel_dtype);

}  // namespace qwenvl
