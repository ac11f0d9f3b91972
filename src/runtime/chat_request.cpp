#include "runtime/chat_request.h"

#include <algorithm>
#include <chrono>
#include <span>

#include "core/error.h"
#include "runtime/generator.h"
#include "runtime/image_token_budget.h"
#include "text/chat.h"
#include "vision/image.h"

namespace qwenvl {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The bytes of `source`: its own, or its file read into `storage`.
std::span<const uint8_t> image_bytes(const ImageSource& source, std::vector<uint8_t>& storage) {
  if (!source.bytes.empty()) return source.bytes;
  storage = read_image_file(source.path);
  return storage;
}

std::vector<ChatMessage> chat_messages(const ChatRequest& request) {
  if (!request.messages.empty()) return request.messages;
  std::vector<ChatMessage> messages;
  if (request.system) messages.push_back({"system", {{ChatPart::Kind::Text, *request.system}}});
  ChatMessage user{"user", {}};
  for (size_t i = 0; i < request.images.size(); ++i)
    user.parts.push_back({ChatPart::Kind::Image, ""});
  for (size_t i = 0; i < request.videos.size(); ++i)
    user.parts.push_back({ChatPart::Kind::Video, ""});
  user.parts.push_back({ChatPart::Kind::Text, request.text});
  messages.push_back(std::move(user));
  return messages;
}

}  // namespace

PreparedPrompt prepare_chat_request(const ChatRequest& request, const Tokenizer& tokenizer,
                                    const ModelConfig& config, DType pixel_dtype) {
  const int64_t count = int64_t(request.images.size());
  if (count > kMaxImagesPerRequest)
    fail("the request has ", count, " images; at most ", kMaxImagesPerRequest, " are accepted");
  const int64_t videos = int64_t(request.videos.size());
  if (videos > kMaxVideosPerRequest)
    fail("the request has ", videos, " videos; at most ", kMaxVideosPerRequest, " are accepted");
  const PreprocessConfig& pre = request.preprocess;
  const int64_t merge =
      int64_t(config.vision.spatial_merge_size) * config.vision.spatial_merge_size;

  // Token counts from the headers alone: the prompt is sized and checked before any decoding.
  std::vector<ImageBounds> bounds;
  for (const ImageSource& source : request.images) {
    std::vector<uint8_t> storage;
    const ImageHeader header = probe_image(image_bytes(source, storage), source.name);
    ImageBounds b{source.name, header.height, header.width,
                  source.min_pixels ? source.min_pixels : pre.min_pixels,
                  source.max_pixels ? source.max_pixels : pre.max_pixels};
    check_pixel_bounds(b.min_pixels, b.max_pixels, cat("image ", source.name));
    bounds.push_back(b);
  }
  // A video's count from its plan: the packet index and the sampling, nothing decoded.
  std::vector<VideoPlan> video_plans;
  for (const VideoSource& video : request.videos)
    video_plans.push_back(plan_video(video.path, video.options, pre));
  const FittedRequest fit =
      fit_image_token_budget(bounds, video_plans, pre, request.max_image_tokens);
  const std::vector<FittedImage>& fitted = fit.images;
  std::vector<int64_t> pad_counts;
  PreparedPrompt out;
  for (size_t i = 0; i < fitted.size(); ++i) {
    pad_counts.push_back(fitted[i].tokens);
    if (fitted[i].downscaled)
      out.notices.push_back(cat("image ", bounds[i].name, " downscaled to ", fitted[i].width, "x",
                                fitted[i].height, " (", fitted[i].tokens,
                                " tokens) to fit the request's ", request.max_image_tokens,
                                " image tokens"));
  }
  std::vector<int64_t> video_pad_counts;
  for (size_t i = 0; i < video_plans.size(); ++i) {
    const FittedImage& f = fit.videos[i];
    if (f.downscaled) {
      limit_video_frame_pixels(video_plans[i], f.max_pixels, pre);
      out.notices.push_back(cat("video ", video_plans[i].path, " downscaled to ", f.width, "x",
                                f.height, " a frame (", f.tokens, " tokens) to fit the request's ",
                                request.max_image_tokens, " image tokens"));
    }
    video_pad_counts.push_back(video_plans[i].tokens(pre));
    QWENVL_CHECK(video_pad_counts.back() == f.tokens, "video ", video_plans[i].path,
                 ": the budget counted ", f.tokens, " tokens, the plan gives ",
                 video_pad_counts.back());
  }
  out.prompt_ids =
      chat_prompt_ids(tokenizer, chat_messages(request), pad_counts, video_pad_counts, true);
  check_context(int64_t(out.prompt_ids.size()), request.max_new_tokens, request.max_context);

  for (size_t i = 0; i < request.images.size(); ++i) {
    const ImageSource& source = request.images[i];
    const auto start = Clock::now();
    std::vector<uint8_t> storage;
    const RgbImage image = decode_image(image_bytes(source, storage), source.name);
    out.image_load_ms += ms_since(start);
    PreprocessConfig own = pre;
    own.min_pixels = bounds[i].min_pixels;
    own.max_pixels = fitted[i].max_pixels;
    ImagePatches patches = preprocess_image(image, own, pixel_dtype);
    QWENVL_CHECK(patches.tokens() / merge == pad_counts[i], "image ", source.name,
                 ": the header promised ", pad_counts[i], " tokens, the pixels give ",
                 patches.tokens() / merge);
    out.max_image_patches = std::max(out.max_image_patches, patches.tokens());
    out.image_tokens += pad_counts[i];
    out.images.push_back(
        {std::move(patches.pixel_values), {patches.grid_t, patches.grid_h, patches.grid_w}});
  }

  // Videos frame by frame: only one decoded frame is alive at a time, and pixel_values are
  // written in place (preprocess_video).
  for (size_t i = 0; i < request.videos.size(); ++i) {
    const VideoSource& source = request.videos[i];
    const auto start = Clock::now();
    VideoPatches video = preprocess_video(video_plans[i], pre, pixel_dtype);
    out.video_ms += ms_since(start);
    ImagePatches& patches = video.patches;
    QWENVL_CHECK(patches.tokens() / merge == video_pad_counts[i], "video ", source.path,
                 ": the plan promised ", video_pad_counts[i], " tokens, the frames give ",
                 patches.tokens() / merge);
    // The vision tower takes a video in pieces of whole temporal patches; the workspace is
    // planned for the largest piece.
    const VisionGrid grid{patches.grid_t, patches.grid_h, patches.grid_w};
    out.max_image_patches = std::max(out.max_image_patches, VisionTower::piece_patches(grid));
    out.image_tokens += video_pad_counts[i];
    // second_per_grid_ts as the processor computes it (a Python float), then a float32 tensor.
    out.video_seconds_per_grid.push_back(
        float(double(pre.temporal_patch_size) / video.sampling.sample_fps));
    out.videos.push_back(
        {std::move(patches.pixel_values), {patches.grid_t, patches.grid_h, patches.grid_w}});
    out.video_info.push_back(
        {source.path, std::move(video.sampling), std::move(video.frame_seconds), video.decode_ms});
  }
  return out;
}

}  // namespace qwenvl
