// probe_video: a file's size, rotation and frame index from its headers and packets, without
// decoding a frame. The frame count comes from the packets, as decord and torchcodec's exact mode
// index a file, not from the container's nb_frames (absent or wrong in many files).
#include <algorithm>

#include "core/error.h"
#include "vision/decoded_image.h"
#include "vision/video.h"
#include "vision/video_input.h"

namespace qwenvl {

namespace {

// 10 hours at 60 fps; a packet index of 7.2 M frames is ~120 MB.
constexpr int64_t kMaxVideoFrames = 2'160'000;

double rational(AVRational r) { return r.num > 0 && r.den > 0 ? av_q2d(r) : 0.0; }

}  // namespace

VideoInfo probe_video(const std::string& path) {
  vision_detail::VideoInput input(path);
  AVStream* stream = input.stream();
  const AVCodecParameters* par = stream->codecpar;
  vision_detail::check_image_size(par->width, par->height, path);

  VideoInfo info;
  info.rotation = vision_detail::stream_rotation(stream);
  const bool swap = info.rotation == 90 || info.rotation == 270;
  info.width = swap ? par->height : par->width;
  info.height = swap ? par->width : par->height;

  AVPacket* packet = input.packet();
  for (;;) {
    const int rc = av_read_frame(input.format(), packet);
    if (rc == AVERROR_EOF) break;
    if (rc < 0)
      fail("video ", path, " is truncated or corrupt after ", info.frame_pts.size(), " frames (",
           vision_detail::VideoInput::describe(rc), ")");
    if (packet->stream_index == input.stream_index() && !(packet->flags & AV_PKT_FLAG_DISCARD)) {
      const int64_t pts = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
      if (pts != AV_NOPTS_VALUE) {
        info.frame_pts.push_back(pts);
        if (packet->flags & AV_PKT_FLAG_KEY) info.keyframe_pts.push_back(pts);
      }
    }
    av_packet_unref(packet);
    if (int64_t(info.frame_pts.size()) > kMaxVideoFrames)
      fail("video ", path, " has more than ", kMaxVideoFrames, " frames; cut it shorter");
  }
  if (info.frame_pts.empty()) fail("video ", path, " has no frames");
  std::sort(info.frame_pts.begin(), info.frame_pts.end());
  std::sort(info.keyframe_pts.begin(), info.keyframe_pts.end());
  info.frame_count = int64_t(info.frame_pts.size());

  const double base = rational(stream->time_base);
  const int64_t start =
      stream->start_time != AV_NOPTS_VALUE ? stream->start_time : info.frame_pts.front();
  for (const int64_t pts : info.frame_pts) info.frame_seconds.push_back(double(pts - start) * base);
  // decord's get_avg_fps: the stream's average frame rate; a stream without one gets its
  // nominal rate, else frames over the span of their timestamps.
  info.fps = rational(stream->avg_frame_rate);
  if (info.fps <= 0) info.fps = rational(stream->r_frame_rate);
  if (info.fps <= 0 && info.frame_count > 1 && info.frame_seconds.back() > 0)
    info.fps = double(info.frame_count - 1) / info.frame_seconds.back();
  if (!(info.fps > 0 && info.fps <= 10000)) fail("video ", path, " has no usable frame rate");
  return info;
}

}  // namespace qwenvl
