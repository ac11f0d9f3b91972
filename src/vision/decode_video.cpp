// decode_video_frames: only the sampled frames. For each, in order: when a keyframe lies between
// the last frame decoded and the one wanted, seek back to the keyframe before it (otherwise keep
// decoding forward, which is cheaper than a seek); decode until the frame whose timestamp is the
// wanted one, releasing every earlier frame as soon as it comes out; convert it to RGB (swscale,
// the frame's own colour matrix and range), turn it upright and hand it to the sink.
#include <algorithm>

extern "C" {
#include <libswscale/swscale.h>
}

#include "core/error.h"
#include "vision/decoded_image.h"
#include "vision/video.h"
#include "vision/video_input.h"

namespace qwenvl {

namespace {

using vision_detail::VideoInput;

// EXIF orientation (apply_orientation) for a clockwise rotation.
int orientation_for(int rotation) {
  return rotation == 90 ? 6 : rotation == 180 ? 3 : rotation == 270 ? 8 : 1;
}

bool full_range(const AVFrame* frame) {
  switch (frame->format) {
    case AV_PIX_FMT_YUVJ420P:
    case AV_PIX_FMT_YUVJ422P:
    case AV_PIX_FMT_YUVJ444P:
    case AV_PIX_FMT_YUVJ440P:
      return true;
    default:
      return frame->color_range == AVCOL_RANGE_JPEG;
  }
}

class RgbConverter {
 public:
  ~RgbConverter() { sws_freeContext(context_); }

  RgbImage convert(const AVFrame* frame, const std::string& path) {
    if (!vision_detail::image_size_ok(frame->width, frame->height))
      vision_detail::check_image_size(frame->width, frame->height, path);
    context_ = sws_getCachedContext(
        context_, frame->width, frame->height, AVPixelFormat(frame->format), frame->width,
        frame->height, AV_PIX_FMT_RGB24, SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT,
        nullptr, nullptr, nullptr);
    if (!context_) fail("video ", path, ": cannot convert its pixel format to RGB");
    const int colorspace =
        frame->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : int(frame->colorspace);
    sws_setColorspaceDetails(context_, sws_getCoefficients(colorspace), full_range(frame) ? 1 : 0,
                             sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
    RgbImage image;
    image.width = frame->width;
    image.height = frame->height;
    image.pixels.resize(size_t(image.width) * image.height * 3);
    uint8_t* planes[4] = {image.pixels.data(), nullptr, nullptr, nullptr};
    int strides[4] = {image.width * 3, 0, 0, 0};
    const int rows =
        sws_scale(context_, frame->data, frame->linesize, 0, frame->height, planes, strides);
    if (rows != frame->height) fail("video ", path, ": colour conversion failed");
    return image;
  }

 private:
  SwsContext* context_ = nullptr;
};

// Pulls decoded frames: the next one out of the decoder, feeding it packets as it asks.
// Returns false at the end of the stream.
bool next_frame(VideoInput& input, bool& draining) {
  AVCodecContext* decoder = input.decoder();
  for (;;) {
    int rc = avcodec_receive_frame(decoder, input.frame());
    if (rc == 0) return true;
    if (rc == AVERROR_EOF) return false;
    if (rc != AVERROR(EAGAIN))
      fail("video ", input.path(), " is corrupt: ", VideoInput::describe(rc));
    if (draining) return false;
    AVPacket* packet = input.packet();
    rc = av_read_frame(input.format(), packet);
    if (rc == AVERROR_EOF) {
      draining = true;
      avcodec_send_packet(decoder, nullptr);
      continue;
    }
    if (rc < 0)
      fail("video ", input.path(), " is truncated or corrupt (", VideoInput::describe(rc), ")");
    if (packet->stream_index == input.stream_index()) {
      rc = avcodec_send_packet(decoder, packet);
      if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_INVALIDDATA)
        fail("video ", input.path(), " is corrupt: ", VideoInput::describe(rc));
    }
    av_packet_unref(packet);
  }
}

}  // namespace

void decode_video_frames(const std::string& path, const VideoInfo& info,
                         const std::vector<int64_t>& indices, const FrameSink& sink) {
  VideoInput input(path);
  RgbConverter converter;
  const int orientation = orientation_for(info.rotation);
  bool started = false, draining = false;
  int64_t last_pts = 0;
  auto seek = [&](int64_t pts) {
    const int rc = av_seek_frame(input.format(), input.stream_index(), pts, AVSEEK_FLAG_BACKWARD);
    if (rc < 0 && started)
      fail("video ", path, " cannot be seeked (", VideoInput::describe(rc), ")");
    avcodec_flush_buffers(input.decoder());
    draining = false;
    started = true;
  };
  for (size_t k = 0; k < indices.size(); ++k) {
    const int64_t index = indices[k];
    QWENVL_CHECK(index >= 0 && index < info.frame_count && (k == 0 || index > indices[k - 1]));
    const int64_t wanted = info.frame_pts[size_t(index)];
    // A keyframe in (last_pts, wanted]: seeking there skips the frames before it.
    const auto key = std::upper_bound(info.keyframe_pts.begin(), info.keyframe_pts.end(),
                                      started ? last_pts : INT64_MIN);
    bool seeked = false, retried = false;
    if (!started || (key != info.keyframe_pts.end() && *key <= wanted)) {
      seek(wanted);
      seeked = true;
    }
    bool found = false;
    while (next_frame(input, draining)) {
      AVFrame* frame = input.frame();
      const int64_t pts = frame->best_effort_timestamp;
      if (pts != AV_NOPTS_VALUE && pts < wanted) {
        av_frame_unref(frame);
        seeked = false;
        continue;
      }
      if (seeked && !retried && pts != AV_NOPTS_VALUE && pts > wanted) {
        // The seek landed past the frame (an imprecise index): start over from the beginning.
        av_frame_unref(frame);
        seek(info.frame_pts.front());
        retried = true;
        continue;
      }
      last_pts = pts == AV_NOPTS_VALUE ? wanted : pts;
      RgbImage rgb = converter.convert(frame, path);
      av_frame_unref(frame);
      sink(int64_t(k), orientation == 1 ? rgb : apply_orientation(rgb, orientation));
      found = true;
      break;
    }
    if (!found)
      fail("video ", path, " is truncated: frame ", index, " of ", info.frame_count,
           " could not be decoded");
  }
}

}  // namespace qwenvl
