// Windows BMP, read as Pillow's BmpImagePlugin reads it: uncompressed 1/4/8-bit palette, 24-bit
// and 32-bit pixels, bottom-up or top-down (negative height), BITMAPCOREHEADER (12 bytes) to
// BITMAPV5HEADER (124). A plain 32-bit file is "BGRX": its fourth byte is ignored, as Pillow does;
// only BI_BITFIELDS files whose masks name an alpha channel carry alpha. RLE, 16-bit and embedded
// JPEG/PNG are refused with an Error that says so.
#include <cstring>

#include "core/error.h"
#include "vision/decoded_image.h"
#include "vision/large_buffer.h"

namespace qwenvl::vision_detail {
namespace {

uint32_t le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint32_t le16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }

constexpr uint32_t kRaw = 0, kRle8 = 1, kRle4 = 2, kBitfields = 3;

// Byte positions of R, G, B (and A, or -1) inside a 32-bit little-endian pixel, for the mask
// layouts Pillow accepts; false for any other layout.
bool channel_bytes(const uint32_t mask[4], int pos[4]) {
  struct Layout {
    uint32_t r, g, b, a;
    int pos[4];
  };
  static const Layout layouts[] = {
      {0xFF0000, 0xFF00, 0xFF, 0x0, {2, 1, 0, -1}},        // BGRX
      {0xFF000000, 0xFF0000, 0xFF00, 0x0, {3, 2, 1, -1}},  // XBGR
      {0xFF000000, 0xFF00, 0xFF, 0x0, {3, 1, 0, -1}},      // BGXR
      {0xFF000000, 0xFF0000, 0xFF00, 0xFF, {3, 2, 1, 0}},  // ABGR
      {0xFF, 0xFF00, 0xFF0000, 0xFF000000, {0, 1, 2, 3}},  // RGBA
      {0xFF0000, 0xFF00, 0xFF, 0xFF000000, {2, 1, 0, 3}},  // BGRA
      {0xFF000000, 0xFF00, 0xFF, 0xFF0000, {3, 1, 0, 2}},  // BGAR
      {0x0, 0x0, 0x0, 0x0, {2, 1, 0, 3}},                  // Pillow reads as BGRA
  };
  for (const auto& l : layouts) {
    if (mask[0] == l.r && mask[1] == l.g && mask[2] == l.b && mask[3] == l.a) {
      std::memcpy(pos, l.pos, sizeof l.pos);
      return true;
    }
  }
  return false;
}

// Everything decode_bmp needs from the headers, each field checked against the file's size.
struct BmpLayout {
  int64_t width = 0, height = 0;
  uint32_t bits = 0;
  bool top_down = false;
  int pos[4] = {2, 1, 0, -1};     // byte of R, G, B, A inside a pixel: BGR(X) by default
  std::vector<uint8_t> palette;   // RGB triplets, 256 entries (1/4/8-bit files)
  size_t offset = 0, stride = 0;  // pixel data: offset + stride * height <= file size
};

BmpLayout read_layout(std::span<const uint8_t> bytes, const std::string& name) {
  const uint8_t* data = bytes.data();
  const size_t size = bytes.size();
  auto need = [&](uint64_t end, const char* what) {
    if (end > size) fail("cannot decode BMP ", name, ": file is truncated (", what, ")");
  };
  need(18, "file header");
  uint64_t offset = le32(data + 10);
  const uint32_t header_size = le32(data + 14);
  need(uint64_t(14) + header_size, "info header");
  const uint8_t* h = data + 18;  // Pillow's header_data: the info header after its size field

  BmpLayout l;
  uint32_t compression = kRaw, colors = 0;
  int palette_entry = 4;
  uint32_t mask[4] = {0, 0, 0, 0};
  if (header_size == 12) {
    l.width = le16(h);
    l.height = le16(h + 2);
    l.bits = le16(h + 6);
    palette_entry = 3;
  } else if (header_size == 40 || header_size == 52 || header_size == 56 || header_size == 64 ||
             header_size == 108 || header_size == 124) {
    // Both sides are signed 32-bit; a negative height means rows top to bottom (Pillow's
    // y_flip). -INT32_MIN is 2^31 here, well past kMaxImageSide, and a negative width is refused.
    l.width = int32_t(le32(h));
    const int64_t height = int32_t(le32(h + 4));
    l.top_down = height < 0;
    l.height = l.top_down ? -height : height;
    l.bits = le16(h + 10);
    compression = le32(h + 12);
    colors = le32(h + 28);
    if (compression == kBitfields) {
      if (header_size >= 52) {
        for (int i = 0; i < 3; ++i) mask[i] = le32(h + 36 + 4 * i);
        if (header_size >= 56) mask[3] = le32(h + 48);
      } else {  // the masks follow a 40-byte header; its fourth RGBQUAD byte is not alpha
        need(uint64_t(14) + header_size + 12, "bit masks");
        for (int i = 0; i < 3; ++i) mask[i] = le32(data + 14 + header_size + 4 * i);
      }
    }
  } else {
    fail("cannot decode BMP ", name, ": unsupported header size ", header_size);
  }
  if (compression == kRle8 || compression == kRle4)
    fail("cannot decode BMP ", name, ": RLE-compressed BMP is not supported (convert it to PNG)");
  if (compression != kRaw && compression != kBitfields)
    fail("cannot decode BMP ", name, ": unsupported compression ", compression);
  const uint32_t bits = l.bits;
  if (bits != 1 && bits != 4 && bits != 8 && bits != 24 && bits != 32)
    fail("cannot decode BMP ", name, ": unsupported pixel depth ", bits, " bits");
  check_image_size(l.width, l.height, name);

  if (compression == kBitfields) {
    bool ok = bits == 32
                  ? channel_bytes(mask, l.pos)
                  : bits == 24 && mask[0] == 0xFF0000 && mask[1] == 0xFF00 && mask[2] == 0xFF;
    if (!ok) fail("cannot decode BMP ", name, ": unsupported bit-field layout");
  }

  if (bits <= 8) {
    if (colors == 0) colors = 1u << bits;
    if (colors > 65536) fail("cannot decode BMP ", name, ": palette of ", colors, " colours");
    const uint64_t palette_at = uint64_t(14) + header_size;
    // Pillow: a pixel offset pointing right after the header means the palette was not counted.
    if (offset == palette_at) offset += uint64_t(palette_entry) * colors;
    need(palette_at + uint64_t(palette_entry) * colors, "palette");
    l.palette.resize(256 * 3);
    for (int i = 0; i < 256; ++i)
      l.palette[3 * i] = l.palette[3 * i + 1] = l.palette[3 * i + 2] = i;
    for (uint32_t i = 0; i < colors && i < 256; ++i) {
      const uint8_t* e = data + palette_at + size_t(palette_entry) * i;  // B, G, R(, 0)
      l.palette[3 * i] = e[2];
      l.palette[3 * i + 1] = e[1];
      l.palette[3 * i + 2] = e[0];
    }
  }

  // Sides are at most kMaxImageSide here, so stride (< 2^19) * height (< 2^16) fits easily.
  l.stride = ((size_t(l.width) * bits + 31) >> 3) & ~size_t(3);
  need(offset + uint64_t(l.stride) * uint64_t(l.height), "pixel data");
  l.offset = size_t(offset);
  return l;
}

}  // namespace

DecodedImage probe_bmp(std::span<const uint8_t> bytes, const std::string& name) {
  BmpLayout l = read_layout(bytes, name);
  DecodedImage out;
  out.width = int(l.width);
  out.height = int(l.height);
  out.channels = l.pos[3] >= 0 ? 4 : 3;
  return out;
}

DecodedImage decode_bmp(std::span<const uint8_t> bytes, const std::string& name) {
  const BmpLayout l = read_layout(bytes, name);
  const int64_t width = l.width, height = l.height;
  const uint32_t bits = l.bits;
  DecodedImage out;
  out.width = int(width);
  out.height = int(height);
  out.channels = l.pos[3] >= 0 ? 4 : 3;
  resize_pixels(out.pixels, size_t(width) * height * out.channels);
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* row =
        bytes.data() + l.offset + l.stride * size_t(l.top_down ? y : height - 1 - y);
    uint8_t* dst = out.pixels.data() + size_t(y) * width * out.channels;
    for (int64_t x = 0; x < width; ++x, dst += out.channels) {
      if (bits <= 8) {
        unsigned index = bits == 8   ? row[x]
                         : bits == 4 ? (row[x >> 1] >> (x & 1 ? 0 : 4)) & 0xF
                                     : (row[x >> 3] >> (7 - (x & 7))) & 1;
        std::memcpy(dst, &l.palette[3 * index], 3);
      } else {
        const uint8_t* p = row + x * (bits / 8);
        for (int c = 0; c < out.channels; ++c) dst[c] = p[l.pos[c]];
      }
    }
  }
  return out;
}

}  // namespace qwenvl::vision_detail
