#pragma once
// A video file opened through libavformat, safely: the file is opened by us (regular files only,
// core/file_read) and FFmpeg reads it only through callbacks on that descriptor, so a path is
// never taken for a URL or a protocol ("concat:", "http://"), demuxers are limited to the
// containers we accept, and a container cannot open other files (playlists, references). Owns the
// demuxer, the best video stream's decoder and one packet and frame; for probe_video and
// decode_video_frames.
#include <cstdint>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

namespace qwenvl::vision_detail {

class VideoInput {
 public:
  // Error naming `path` when it is not a regular file, not one of the accepted containers, or has
  // no video stream that FFmpeg can decode.
  explicit VideoInput(const std::string& path);
  ~VideoInput();
  VideoInput(const VideoInput&) = delete;
  VideoInput& operator=(const VideoInput&) = delete;

  AVFormatContext* format() const { return format_; }
  AVStream* stream() const { return format_->streams[stream_index_]; }
  int stream_index() const { return stream_index_; }
  AVCodecContext* decoder() const { return decoder_; }
  AVPacket* packet() const { return packet_; }
  AVFrame* frame() const { return frame_; }
  const std::string& path() const { return path_; }

  // FFmpeg's message for an error code, for our one-line errors.
  static std::string describe(int code);

 private:
  void release();

  std::string path_;
  int fd_ = -1;
  AVIOContext* io_ = nullptr;
  AVFormatContext* format_ = nullptr;
  AVCodecContext* decoder_ = nullptr;
  AVPacket* packet_ = nullptr;
  AVFrame* frame_ = nullptr;
  int stream_index_ = -1;
};

// The clockwise rotation (0, 90, 180, 270) that turns the stream's frames upright, from its
// display matrix (what ffmpeg's autorotate applies); 0 without one. Mirroring matrices are
// treated as their rotation part.
int stream_rotation(const AVStream* stream);

}  // namespace qwenvl::vision_detail
