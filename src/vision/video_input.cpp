#include "vision/video_input.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>

#include "core/error.h"
#include "core/file_read.h"

extern "C" {
#include <libavutil/display.h>
}

namespace qwenvl::vision_detail {

namespace {

// The demuxers we open (libavformat's names; "mov,mp4,..." is one demuxer): MP4/MOV, Matroska
// and WebM, AVI. Anything else, a text file included, fails to open as "not a video".
constexpr const char* kDemuxers = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi";
constexpr int kIoBufferBytes = 64 * 1024;

int read_fd(void* opaque, uint8_t* buffer, int size) {
  const int fd = *static_cast<int*>(opaque);
  for (;;) {
    const ssize_t n = ::read(fd, buffer, size_t(size));
    if (n > 0) return int(n);
    if (n == 0) return AVERROR_EOF;
    if (errno != EINTR) return AVERROR(errno);
  }
}

int64_t seek_fd(void* opaque, int64_t offset, int whence) {
  const int fd = *static_cast<int*>(opaque);
  whence &= ~AVSEEK_FORCE;
  if (whence == AVSEEK_SIZE) {
    const off_t here = ::lseek(fd, 0, SEEK_CUR);
    const off_t end = ::lseek(fd, 0, SEEK_END);
    ::lseek(fd, here, SEEK_SET);
    return end < 0 ? AVERROR(errno) : int64_t(end);
  }
  const off_t at = ::lseek(fd, off_t(offset), whence);
  return at < 0 ? AVERROR(errno) : int64_t(at);
}

// A container that names other files (a playlist, an external reference) gets none.
int refuse_io_open(AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) {
  return AVERROR(EPERM);
}

void quiet_ffmpeg() {
  // FFmpeg would print its own warnings on stderr; errors reach the user as our one line.
  static const bool once = [] {
    av_log_set_level(AV_LOG_QUIET);
    return true;
  }();
  (void)once;
}

}  // namespace

std::string VideoInput::describe(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof(text));
  return text;
}

VideoInput::VideoInput(const std::string& path) : path_(path) {
  quiet_ffmpeg();
  fd_ = open_regular_file(path, "video").fd;
  try {
    auto* buffer = static_cast<uint8_t*>(av_malloc(kIoBufferBytes));
    if (!buffer) fail_resource("out of memory opening video ", path);
    io_ = avio_alloc_context(buffer, kIoBufferBytes, 0, &fd_, read_fd, nullptr, seek_fd);
    if (!io_) {
      av_free(buffer);
      fail_resource("out of memory opening video ", path);
    }
    format_ = avformat_alloc_context();
    if (!format_) fail_resource("out of memory opening video ", path);
    format_->pb = io_;
    format_->flags |= AVFMT_FLAG_CUSTOM_IO;
    format_->format_whitelist = av_strdup(kDemuxers);
    format_->io_open = refuse_io_open;
    int rc = avformat_open_input(&format_, nullptr, nullptr, nullptr);
    if (rc < 0)  // avformat_open_input frees the context on failure
      fail("video ", path, " is not an MP4, MOV, MKV, WebM or AVI file FFmpeg can read (",
           describe(rc), ")");
    rc = avformat_find_stream_info(format_, nullptr);
    if (rc < 0)
      fail("video ", path, " is damaged: its streams cannot be read (", describe(rc), ")");
    const AVCodec* codec = nullptr;
    stream_index_ = av_find_best_stream(format_, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream_index_ == AVERROR_DECODER_NOT_FOUND)
      fail("video ", path, " uses a codec FFmpeg cannot decode here");
    if (stream_index_ < 0 || (stream()->disposition & AV_DISPOSITION_ATTACHED_PIC))
      fail("file ", path, " has no video stream");
    decoder_ = avcodec_alloc_context3(codec);
    packet_ = av_packet_alloc();
    frame_ = av_frame_alloc();
    if (!decoder_ || !packet_ || !frame_) fail_resource("out of memory opening video ", path);
    rc = avcodec_parameters_to_context(decoder_, stream()->codecpar);
    if (rc < 0) fail("video ", path, " has unusable codec parameters (", describe(rc), ")");
    decoder_->thread_count = 0;  // FFmpeg picks by the cores
    rc = avcodec_open2(decoder_, codec, nullptr);
    if (rc < 0) fail("video ", path, ": the decoder refuses the stream (", describe(rc), ")");
  } catch (...) {
    release();
    throw;
  }
}

VideoInput::~VideoInput() { release(); }

void VideoInput::release() {
  av_frame_free(&frame_);
  av_packet_free(&packet_);
  avcodec_free_context(&decoder_);
  avformat_close_input(&format_);
  if (io_) {
    av_freep(&io_->buffer);
    avio_context_free(&io_);
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int stream_rotation(const AVStream* stream) {
  size_t size = 0;
  const uint8_t* matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (!matrix || size < 9 * sizeof(int32_t)) return 0;
  // ffmpeg's get_rotation: the matrix's angle is counter-clockwise; the frames need its opposite.
  const double angle = av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
  if (!std::isfinite(angle)) return 0;
  double theta = -std::round(angle);
  theta -= 360 * std::floor(theta / 360 + 0.9 / 360);
  const int degrees = int(theta);
  return degrees == 90 || degrees == 180 || degrees == 270 ? degrees : 0;
}

}  // namespace qwenvl::vision_detail
