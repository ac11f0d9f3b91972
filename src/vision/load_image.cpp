// load_image / decode_image: read the file, pick the decoder from the magic bytes (never the
// extension), then composite alpha on white and apply the EXIF orientation.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/file_read.h"
#include "vision/decoded_image.h"
#include "vision/image.h"

namespace qwenvl {
namespace vision_detail {

bool image_size_ok(int64_t width, int64_t height) {
  // Each side first: with both at most kMaxImageSide the product cannot overflow.
  return width > 0 && height > 0 && width <= kMaxImageSide && height <= kMaxImageSide &&
         width * height <= kMaxImagePixels;
}

void check_image_size(int64_t width, int64_t height, const std::string& name) {
  if (width <= 0 || height <= 0)
    fail("image ", name, " has an empty size (", width, "x", height,
         "); the file is corrupt, re-export it");
  if (width > kMaxImageSide || height > kMaxImageSide)
    fail("image ", name, " claims to be ", width, "x", height, "; the limit is ", kMaxImageSide,
         " pixels a side (scale the image down)");
  if (width * height > kMaxImagePixels)
    fail("image ", name, " is ", width, "x", height, " = ", width * height / 1000000,
         " megapixels; the limit is ", kMaxImagePixels / 1000000,
         " megapixels (scale the image down)");
}

}  // namespace vision_detail

namespace {

using vision_detail::DecodedImage;

bool starts_with(std::span<const uint8_t> bytes, size_t at, const char* magic, size_t n) {
  return bytes.size() >= at + n && std::memcmp(bytes.data() + at, magic, n) == 0;
}

// A name for formats we recognise but do not decode, for a more helpful message.
const char* unsupported_format(std::span<const uint8_t> b) {
  if (starts_with(b, 0, "GIF8", 4)) return "GIF";
  if (starts_with(b, 0, "II*\0", 4) || starts_with(b, 0, "MM\0*", 4)) return "TIFF";
  if (starts_with(b, 4, "ftypheic", 8) || starts_with(b, 4, "ftypheix", 8) ||
      starts_with(b, 4, "ftypmif1", 8))
    return "HEIF";
  if (starts_with(b, 4, "ftypavif", 8)) return "AVIF";
  if (starts_with(b, 0, "\xFF\x4F\xFF\x51", 4) || starts_with(b, 4, "jP  ", 4)) return "JPEG 2000";
  return nullptr;
}

DecodedImage decode_any(std::span<const uint8_t> bytes, const std::string& name) {
  switch (vision_detail::sniff_format(bytes, name)) {
    case ImageFormat::kJpeg:
      return vision_detail::decode_jpeg(bytes, name);
    case ImageFormat::kPng:
      return vision_detail::decode_png(bytes, name);
    case ImageFormat::kWebp:
      return vision_detail::decode_webp(bytes, name);
    case ImageFormat::kBmp:
      return vision_detail::decode_bmp(bytes, name);
  }
  fail("image ", name, ": unknown format");
}

}  // namespace

namespace vision_detail {

ImageFormat sniff_format(std::span<const uint8_t> bytes, const std::string& name) {
  if (starts_with(bytes, 0, "\xFF\xD8\xFF", 3)) return ImageFormat::kJpeg;
  if (starts_with(bytes, 0, "\x89PNG\r\n\x1A\n", 8)) return ImageFormat::kPng;
  if (starts_with(bytes, 0, "RIFF", 4) && starts_with(bytes, 8, "WEBP", 4))
    return ImageFormat::kWebp;
  if (starts_with(bytes, 0, "BM", 2)) return ImageFormat::kBmp;
  if (bytes.empty()) fail("image ", name, " is an empty file");
  if (const char* format = unsupported_format(bytes))
    fail("image ", name, " is ", format, ", which is not supported (use JPEG, PNG, WebP or BMP)");
  fail("image ", name, " is not a JPEG, PNG, WebP or BMP file");
}

}  // namespace vision_detail

RgbImage decode_image(std::span<const uint8_t> bytes, const std::string& name_for_errors) {
  DecodedImage decoded = decode_any(bytes, name_for_errors);
  RgbImage rgb;
  if (decoded.channels == 4) {
    rgb = composite_on_white(decoded.pixels.data(), decoded.width, decoded.height);
  } else {
    rgb.width = decoded.width;
    rgb.height = decoded.height;
    rgb.pixels = std::move(decoded.pixels);
  }
  int orientation = exif_orientation(decoded.exif);
  if (orientation == 1) return rgb;  // (not `?:`, which would copy the pixels)
  return apply_orientation(rgb, orientation);
}

std::vector<uint8_t> read_image_file(const std::string& path) {
  // 1 GiB: far above any image under the pixel limit; stops a wrong path to a huge file early.
  constexpr int64_t kMaxImageFileBytes = 1ll << 30;
  return read_binary_file(path, kMaxImageFileBytes, "image");
}

RgbImage load_image(const std::string& path) { return decode_image(read_image_file(path), path); }

}  // namespace qwenvl
