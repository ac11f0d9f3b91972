#pragma once
// What one format decoder hands to load_image: 8-bit RGB or RGBA (straight, not premultiplied)
// exactly as Pillow's decoder + mode conversion would hold it, plus the raw EXIF block if the file
// carries one. Orientation and alpha are dealt with afterwards, in one place (load_image.cpp).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace qwenvl::vision_detail {

struct DecodedImage {
  int width = 0, height = 0;
  int channels = 3;             // 3: RGB, 4: RGBA
  std::vector<uint8_t> pixels;  // width * height * channels
  std::vector<uint8_t> exif;    // TIFF block, with or without the "Exif\0\0" prefix; may be empty
};

// The largest image we accept; a 200-megapixel RGBA frame is 800 MB already.
inline constexpr int64_t kMaxImagePixels = 200'000'000;

// Throws Error unless 0 < width, height and width * height <= kMaxImagePixels. Decoders call it
// with the header's size before allocating anything.
void check_image_size(int64_t width, int64_t height, const std::string& name);

DecodedImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage decode_png(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage decode_webp(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage decode_bmp(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace qwenvl::vision_detail
