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

// JPEG (baseline, progressive), PNG (8/16-bit, palette, grey, alpha), WebP, BMP. Error with the
// file name for anything unreadable or unsupported.
RgbImage load_image(const std::string& path);
RgbImage decode_image(std::span<const uint8_t> bytes, const std::string& name_for_errors);

}  // namespace qwenvl
