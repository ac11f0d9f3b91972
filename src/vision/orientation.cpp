// EXIF orientation: reading the tag from a TIFF block and Pillow's exif_transpose transposes.
#include <cstring>

#include "core/error.h"
#include "vision/image.h"
#include "vision/large_buffer.h"

namespace qwenvl {

int exif_orientation(std::span<const uint8_t> exif) {
  if (exif.size() >= 6 && std::memcmp(exif.data(), "Exif\0\0", 6) == 0) exif = exif.subspan(6);
  const size_t n = exif.size();
  if (n < 8) return 1;
  const uint8_t* p = exif.data();
  bool little = p[0] == 'I' && p[1] == 'I';
  if (!little && !(p[0] == 'M' && p[1] == 'M')) return 1;
  auto u16 = [&](size_t at) -> uint32_t {
    return little ? p[at] | p[at + 1] << 8 : p[at] << 8 | p[at + 1];
  };
  auto u32 = [&](size_t at) -> uint32_t {
    return little ? u16(at) | u16(at + 2) << 16 : u16(at) << 16 | u16(at + 2);
  };
  if (u16(2) != 42) return 1;
  size_t ifd = u32(4);
  if (ifd > n - 2) return 1;
  size_t entries = u16(ifd);
  for (size_t i = 0; i < entries; ++i) {
    size_t e = ifd + 2 + 12 * i;
    if (e + 12 > n) return 1;
    if (u16(e) != 0x0112) continue;
    uint32_t type = u16(e + 2), count = u32(e + 4);
    if (count < 1) return 1;
    uint32_t value = type == 3 ? u16(e + 8) : type == 4 ? u32(e + 8) : type == 1 ? p[e + 8] : 0;
    return value >= 1 && value <= 8 ? int(value) : 1;
  }
  return 1;
}

RgbImage apply_orientation(const RgbImage& image, int orientation) {
  if (orientation < 2 || orientation > 8) return image;
  const int w = image.width, h = image.height;
  const bool swaps = orientation >= 5;  // 5..8 exchange width and height
  RgbImage out;
  out.width = swaps ? h : w;
  out.height = swaps ? w : h;
  vision_detail::resize_pixels(out.pixels, image.pixels.size());
  const uint8_t* in = image.pixels.data();
  for (int r = 0; r < out.height; ++r) {
    uint8_t* dst = out.pixels.data() + size_t(r) * out.width * 3;
    for (int c = 0; c < out.width; ++c, dst += 3) {
      int sr, sc;  // the source row and column of output pixel (r, c)
      switch (orientation) {
        case 2:
          sr = r, sc = w - 1 - c;
          break;  // FLIP_LEFT_RIGHT
        case 3:
          sr = h - 1 - r, sc = w - 1 - c;
          break;  // ROTATE_180
        case 4:
          sr = h - 1 - r, sc = c;
          break;  // FLIP_TOP_BOTTOM
        case 5:
          sr = c, sc = r;
          break;  // TRANSPOSE
        case 6:
          sr = h - 1 - c, sc = r;
          break;  // ROTATE_270 (90 clockwise)
        case 7:
          sr = h - 1 - c, sc = w - 1 - r;
          break;  // TRANSVERSE
        default:
          sr = c, sc = w - 1 - r;
          break;  // 8: ROTATE_90 (counter-clockwise)
      }
      std::memcpy(dst, in + (size_t(sr) * w + sc) * 3, 3);
    }
  }
  return out;
}

RgbImage composite_on_white(const uint8_t* rgba, int width, int height) {
  RgbImage out;
  out.width = width;
  out.height = height;
  const size_t n = size_t(width) * height;
  vision_detail::resize_pixels(out.pixels, n * 3);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* s = rgba + 4 * i;
    int a = s[3];
    for (int c = 0; c < 3; ++c) {
      int t = 255 * (255 - a) + s[c] * a + 128;  // Pillow's BLEND / DIV255
      out.pixels[3 * i + c] = uint8_t(((t >> 8) + t) >> 8);
    }
  }
  return out;
}

}  // namespace qwenvl
