#pragma once
// Decoded images: 8-bit RGB, rows top to bottom, EXIF orientation applied, alpha composited on
// white (as qwen-vl-utils does; transformers' processor would drop alpha with convert("RGB")).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace qwenvl {

struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3, interleaved RGB
};

enum class ImageFormat { kJpeg, kPng, kWebp, kBmp };

// What probe_image reads from an image's headers: the size decode_image will return (EXIF
// orientations 5-8 already swap width and height) and the format.
struct ImageHeader {
  int width = 0, height = 0;
  ImageFormat format = ImageFormat::kJpeg;
};

// The upright size of an image from its headers alone (JPEG: markers up to the first scan, PNG:
// IHDR and the chunk list, WebP: VP8X / VP8 / VP8L headers and the EXIF chunk, BMP: its headers),
// with the same size checks as decode_image and without decoding any pixels: cheap on any bytes,
// hostile ones included. Error where decode_image would refuse the headers; when both succeed the
// sizes are equal. For counting an image's tokens (smart_resize) before decoding it.
ImageHeader probe_image(std::span<const uint8_t> bytes, const std::string& name_for_errors);

// JPEG (baseline, progressive), PNG (8/16-bit, palette, grey, alpha), WebP, BMP. Error with the
// file name for anything unreadable or unsupported.
RgbImage load_image(const std::string& path);
RgbImage decode_image(std::span<const uint8_t> bytes, const std::string& name_for_errors);
// The bytes of an image file (load_image without the decoding); refuses files over 1 GiB.
std::vector<uint8_t> read_image_file(const std::string& path);

// The Orientation tag (0x0112) of an EXIF block (a TIFF header, optionally after "Exif\0\0"):
// 1..8, or 1 when the block is absent, malformed or has none.
int exif_orientation(std::span<const uint8_t> exif);

// Turns an image stored with EXIF orientation `orientation` upright, as Pillow's
// ImageOps.exif_transpose does (2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90
// clockwise, 7 transverse, 8 rotate 90 counter-clockwise); other values change nothing.
RgbImage apply_orientation(const RgbImage& image, int orientation);

// Straight RGBA -> RGB on a white background, rounding exactly as Pillow's
// `white.paste(rgba, mask=alpha)` (qwen-vl-utils' to_rgb): DIV255(255 * (255 - a) + c * a).
RgbImage composite_on_white(const uint8_t* rgba, int width, int height);

}  // namespace qwenvl
