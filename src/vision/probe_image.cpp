// probe_image: an image's upright size from its headers, through the same header reading and
// checks as each decoder (the probe_* functions next to them), without decoding any pixels.
#include "core/error.h"
#include "vision/decoded_image.h"
#include "vision/image.h"

namespace qwenvl {

ImageHeader probe_image(std::span<const uint8_t> bytes, const std::string& name_for_errors) {
  using namespace vision_detail;
  const std::string& name = name_for_errors;
  ImageHeader header;
  header.format = sniff_format(bytes, name);
  DecodedImage probed;
  switch (header.format) {
    case ImageFormat::kJpeg:
      probed = probe_jpeg(bytes, name);
      break;
    case ImageFormat::kPng:
      probed = probe_png(bytes, name);
      break;
    case ImageFormat::kWebp:
      probed = probe_webp(bytes, name);
      break;
    case ImageFormat::kBmp:
      probed = probe_bmp(bytes, name);
      break;
  }
  // decode_image's apply_orientation: 5 transpose, 6 and 8 rotate by 90, 7 transverse.
  const bool swapped = exif_orientation(probed.exif) >= 5;
  header.width = swapped ? probed.height : probed.width;
  header.height = swapped ? probed.width : probed.height;
  return header;
}

}  // namespace qwenvl
