// PNG through libpng, giving the pixels Pillow gives after convert("RGB") / convert("RGBA"):
// palette -> RGB (RGBA with tRNS), grey 1/2/4-bit scaled to 0..255, grey -> RGB, tRNS colour keys
// -> alpha. 16-bit samples follow Pillow's unpackers: RGB(A) and grey+alpha keep the high byte
// ("RGB;16B", "LA;16B"), while 16-bit grey is Pillow's "I;16", whose convert("RGB") clips values
// above 255 to 255 (I16_RGB) rather than scaling them. No gamma or colour management, as Pillow.
#include <png.h>
#include <zlib.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <optional>

#include "core/error.h"
#include "vision/decoded_image.h"
#include "vision/large_buffer.h"

namespace qwenvl::vision_detail {
namespace {

uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

struct Chunk {
  char type[5];
  std::span<const uint8_t> data;  // cut short when the file is
  const uint8_t* crc;             // the stored CRC; null when the file ends before it

  // Computed on demand: walking the chunks of a large file costs nothing per IDAT byte.
  bool crc_ok() const {
    return crc && crc32(crc32(0, reinterpret_cast<const Bytef*>(type), 4), data.data(),
                        uInt(data.size())) == be32(crc);
  }
};

// Calls visit(chunk) for each chunk after the signature, in file order, until IEND, the end of
// the file or visit returning false. Only lengths are trusted, never to read past the end.
template <typename Visit>
void for_each_chunk(std::span<const uint8_t> bytes, Visit visit) {
  for (size_t pos = 8; bytes.size() - pos >= 8;) {
    const uint64_t length = be32(&bytes[pos]);
    Chunk chunk{};
    std::memcpy(chunk.type, &bytes[pos + 4], 4);
    const size_t available = bytes.size() - pos - 8;
    chunk.data = bytes.subspan(pos + 8, size_t(std::min<uint64_t>(length, available)));
    chunk.crc = length + 4 <= available ? &bytes[pos + 8 + length] : nullptr;
    if (!visit(chunk) || std::memcmp(chunk.type, "IEND", 4) == 0 || length + 4 > available) return;
    pos += 8 + size_t(length) + 4;
  }
}

// The IDAT bytes actually present: with at most kMaxDeflateRatio bytes out per byte in, a file
// whose IDAT cannot hold `height` rows of `row_bits` is truncated.
uint64_t idat_bytes(std::span<const uint8_t> bytes) {
  uint64_t total = 0;
  for_each_chunk(bytes, [&](const Chunk& c) {
    if (std::memcmp(c.type, "IDAT", 4) == 0) total += c.data.size();
    return true;
  });
  return total;
}

bool idat_can_hold(uint64_t idat, uint64_t width, uint64_t height, int bits_per_pixel) {
  const uint64_t raw = height * ((width * uint64_t(bits_per_pixel) + 7) / 8);  // < 2^48
  return idat * uint64_t(kMaxDeflateRatio) >= raw;
}

struct Source {
  const uint8_t* data;
  size_t size;
  size_t pos;
  uint64_t idat_bytes;
  char message[256];
};

void on_error(png_structp png, png_const_charp text) {
  auto* source = static_cast<Source*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof source->message, "%s", text);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}

void read_bytes(png_structp png, png_bytep out, png_size_t count) {
  auto* source = static_cast<Source*>(png_get_io_ptr(png));
  if (count > source->size - source->pos) png_error(png, "file is truncated");
  std::memcpy(out, source->data + source->pos, count);
  source->pos += count;
}

void append_exif(png_structp png, png_infop info, std::vector<uint8_t>& exif) {
#ifdef PNG_eXIf_SUPPORTED
  png_uint_32 length = 0;
  png_bytep data = nullptr;
  if (info && exif.empty() && png_get_eXIf_1(png, info, &length, &data) && data && length)
    exif.assign(data, data + length);
#endif
}

// All libpng calls, with only trivially destructible locals (buffers belong to the caller), so
// png_longjmp skips no destructor. Returns false with source.message filled on failure.
bool run_decoder(png_structp png, png_infop info, png_infop end_info, Source& source,
                 DecodedImage& out, std::vector<uint8_t>& raw, std::vector<png_bytep>& rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_read_fn(png, &source, read_bytes);
  png_set_user_limits(png, png_uint_32(kMaxImageSide), png_uint_32(kMaxImageSide));
  png_set_chunk_cache_max(png, png_uint_32(kMaxPngAncillaryChunks));
  png_set_chunk_malloc_max(png, png_alloc_size_t(kMaxPngChunkBytes));
  png_read_info(png, info);

  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, nullptr, nullptr);
  if (!image_size_ok(width, height)) {  // (libpng's user limits have caught most of these)
    std::snprintf(source.message, sizeof source.message,
                  "image size %ux%u is over the limits of %lld pixels a side, %lld in all",
                  unsigned(width), unsigned(height), static_cast<long long>(kMaxImageSide),
                  static_cast<long long>(kMaxImagePixels));
    return false;
  }
  if (!idat_can_hold(source.idat_bytes, width, height, bit_depth * png_get_channels(png, info))) {
    std::snprintf(source.message, sizeof source.message,
                  "file is truncated (too little image data for %ux%u pixels)", unsigned(width),
                  unsigned(height));
    return false;
  }
  bool grey16 = (color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth == 16;
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  int channels = png_get_channels(png, info);
  int depth = png_get_bit_depth(png, info);
  size_t row_bytes = png_get_rowbytes(png, info);
  bool has_alpha = channels == 2 || channels == 4;
  out.width = int(width);
  out.height = int(height);
  out.channels = has_alpha ? 4 : 3;
  resize_pixels(out.pixels, size_t(width) * height * out.channels);
  // 8-bit RGB / RGBA land in place; everything else goes through `raw` and is converted below.
  bool direct = depth == 8 && (channels == 3 || channels == 4);
  if (!direct) raw.resize(row_bytes * height);
  rows.resize(height);
  for (png_uint_32 y = 0; y < height; ++y)
    rows[y] = direct ? out.pixels.data() + size_t(y) * row_bytes : raw.data() + y * row_bytes;
  png_read_image(png, rows.data());
  png_read_end(png, end_info);
  append_exif(png, info, out.exif);
  append_exif(png, end_info, out.exif);
  if (direct) return true;

  uint8_t* dst = out.pixels.data();
  int out_ch = out.channels;
  for (size_t y = 0; y < height; ++y) {
    const uint8_t* src = raw.data() + y * row_bytes;
    for (size_t x = 0; x < width; ++x, dst += out_ch) {
      uint8_t v[4] = {0, 0, 0, 0};
      for (int c = 0; c < channels; ++c) {
        if (depth == 8) {
          v[c] = src[x * channels + c];
        } else {  // big-endian 16-bit
          const uint8_t* s = src + (x * channels + c) * 2;
          v[c] = (grey16 && c == 0) ? (s[0] == 0 ? s[1] : 255) : s[0];
        }
      }
      if (channels <= 2) {  // grey (+ alpha)
        dst[0] = dst[1] = dst[2] = v[0];
        if (channels == 2) dst[3] = v[1];
      } else {
        for (int c = 0; c < channels; ++c) dst[c] = v[c];
      }
    }
  }
  return true;
}

}  // namespace

// IHDR as libpng checks it (png_check_IHDR), then the first eXIf chunk libpng would keep: CRC
// correct, at least 2 bytes, and its byte-order test (png_handle_eXIf refuses a second byte other
// than 'M' or 'I' only when it also differs from the first).
DecodedImage probe_png(std::span<const uint8_t> bytes, const std::string& name) {
  auto bad = [&](const char* what) { fail("cannot decode PNG ", name, ": ", what); };
  if (bytes.size() < 8 + 8 + 13 + 4) bad("file is truncated (header)");
  std::optional<Chunk> ihdr;
  for_each_chunk(bytes, [&](const Chunk& c) { return ihdr = c, false; });
  if (!ihdr || std::memcmp(ihdr->type, "IHDR", 4) != 0 || ihdr->data.size() != 13 ||
      be32(&bytes[8]) != 13)
    bad("the file does not start with an IHDR chunk");
  if (!ihdr->crc_ok()) bad("the IHDR chunk is corrupt (CRC error)");
  const uint8_t* h = ihdr->data.data();
  const int64_t width = be32(h), height = be32(h + 4);
  const int depth = h[8], color = h[9];
  const bool depth_ok =
      (color == 0 && (depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16)) ||
      (color == 3 && (depth == 1 || depth == 2 || depth == 4 || depth == 8)) ||
      ((color == 2 || color == 4 || color == 6) && (depth == 8 || depth == 16));
  if (!depth_ok || h[10] != 0 || h[11] != 0 || h[12] > 1)
    bad("the IHDR chunk is invalid (bit depth, colour type, compression, filter or interlace)");
  check_image_size(width, height, name);
  const int channels = color == 2 ? 3 : color == 4 ? 2 : color == 6 ? 4 : 1;
  if (!idat_can_hold(idat_bytes(bytes), width, height, depth * channels))
    bad("file is truncated (too little image data for its size)");

  DecodedImage out;
  out.width = int(width);
  out.height = int(height);
  for_each_chunk(bytes, [&](const Chunk& c) {
    const auto& d = c.data;
    if (std::memcmp(c.type, "eXIf", 4) == 0 && d.size() >= 2 &&
        (d[1] == 'M' || d[1] == 'I' || d[0] == d[1]) && c.crc_ok()) {
      out.exif.assign(d.begin(), d.end());
      return false;
    }
    return true;
  });
  return out;
}

DecodedImage decode_png(std::span<const uint8_t> bytes, const std::string& name) {
  Source source{bytes.data(), bytes.size(), 0, idat_bytes(bytes), {}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, on_error, on_warning);
  if (!png) fail("cannot decode PNG ", name, ": libpng could not start");
  png_infop info = png_create_info_struct(png);
  png_infop end_info = png_create_info_struct(png);
  DecodedImage out;
  std::vector<uint8_t> raw;
  std::vector<png_bytep> rows;
  bool ok = false;
  if (info && end_info) {
    try {
      ok = run_decoder(png, info, end_info, source, out, raw, rows);
    } catch (...) {
      png_destroy_read_struct(&png, &info, &end_info);
      throw;
    }
  } else {
    std::snprintf(source.message, sizeof source.message, "out of memory");
  }
  png_destroy_read_struct(&png, info ? &info : nullptr, end_info ? &end_info : nullptr);
  if (!ok) fail("cannot decode PNG ", name, ": ", source.message);
  return out;
}

}  // namespace qwenvl::vision_detail
