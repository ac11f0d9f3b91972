// WebP through libwebp's plain decoder (fancy upsampling on, as in the WebPAnimDecoder Pillow
// uses, whose first frame is a plain decode). Lossy, lossless, alpha; the EXIF chunk is read from
// the RIFF container by hand so that libwebpdemux is not needed. Animations are refused.
#include <webp/decode.h>

#include <cstring>

#include "core/error.h"
#include "vision/decoded_image.h"
#include "vision/large_buffer.h"

namespace qwenvl::vision_detail {
namespace {

uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// RIFF: "RIFF" size "WEBP", then chunks of fourcc, little-endian size, payload padded to even.
std::vector<uint8_t> find_exif_chunk(std::span<const uint8_t> bytes) {
  size_t end = std::min<size_t>(bytes.size(), size_t(le32(bytes.data() + 4)) + 8);
  for (size_t pos = 12; pos + 8 <= end;) {
    uint32_t size = le32(bytes.data() + pos + 4);
    if (size > end - pos - 8) break;
    if (std::memcmp(bytes.data() + pos, "EXIF", 4) == 0)
      return {bytes.begin() + pos + 8, bytes.begin() + pos + 8 + size};
    pos += 8 + size + (size & 1);
  }
  return {};
}

const char* status_text(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_OUT_OF_MEMORY:
      return "out of memory";
    case VP8_STATUS_INVALID_PARAM:
      return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR:
      return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE:
      return "unsupported feature";
    case VP8_STATUS_SUSPENDED:
      return "suspended";
    case VP8_STATUS_USER_ABORT:
      return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA:
      return "file is truncated";
    default:
      return "unknown error";
  }
}

// The headers (WebPGetFeatures reads the VP8X / VP8 / VP8L headers, nothing more), checked before
// anything is allocated; out gets the size, the channels and the EXIF block, no pixels.
DecodedImage read_header(std::span<const uint8_t> bytes, const std::string& name) {
  // The RIFF size covers the whole file; libwebp's decode refuses a file shorter than that, but
  // only after the caller has allocated its pixels.
  if (bytes.size() < 12 || uint64_t(le32(bytes.data() + 4)) + 8 > bytes.size())
    fail("cannot decode WebP ", name, ": file is truncated");
  WebPBitstreamFeatures features;
  VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &features);
  if (status != VP8_STATUS_OK) fail("cannot decode WebP ", name, ": ", status_text(status));
  if (features.has_animation) fail("cannot decode WebP ", name, ": animated WebP is not supported");
  check_image_size(features.width, features.height, name);
  DecodedImage out;
  out.width = features.width;
  out.height = features.height;
  out.channels = features.has_alpha ? 4 : 3;
  out.exif = find_exif_chunk(bytes);
  return out;
}

}  // namespace

DecodedImage probe_webp(std::span<const uint8_t> bytes, const std::string& name) {
  return read_header(bytes, name);
}

DecodedImage decode_webp(std::span<const uint8_t> bytes, const std::string& name) {
  DecodedImage out = read_header(bytes, name);
  resize_pixels(out.pixels, size_t(out.width) * out.height * out.channels);
  size_t stride = size_t(out.width) * out.channels;
  uint8_t* ok = out.channels == 4
                    ? WebPDecodeRGBAInto(bytes.data(), bytes.size(), out.pixels.data(),
                                         out.pixels.size(), int(stride))
                    : WebPDecodeRGBInto(bytes.data(), bytes.size(), out.pixels.data(),
                                        out.pixels.size(), int(stride));
  if (!ok) fail("cannot decode WebP ", name, ": corrupt or truncated data");
  return out;
}

}  // namespace qwenvl::vision_detail
