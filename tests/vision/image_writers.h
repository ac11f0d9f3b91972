#pragma once
// Encoders for the vision tests: small images written with libpng / libjpeg / libwebp (and BMP and
// EXIF blocks by hand) so every decoder path is tested without fixture files.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>
#include <png.h>
#include <webp/encode.h>
#include <zlib.h>

namespace qwenvl::test {

using Bytes = std::vector<uint8_t>;

inline Bytes random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(n);
  for (auto& b : out) b = uint8_t(rng());
  return out;
}

inline void put_le16(Bytes& b, uint32_t v) {
  b.push_back(uint8_t(v));
  b.push_back(uint8_t(v >> 8));
}
inline void put_le32(Bytes& b, uint32_t v) {
  put_le16(b, v & 0xFFFF);
  put_le16(b, v >> 16);
}
inline void put_be16(Bytes& b, uint32_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}
inline void put_be32(Bytes& b, uint32_t v) {
  put_be16(b, v >> 16);
  put_be16(b, v & 0xFFFF);
}

// A TIFF block with one IFD0 entry, Orientation = `orientation` (SHORT), in either byte order.
inline Bytes exif_block(int orientation, bool big_endian, bool with_prefix = true) {
  Bytes b;
  auto append = [&](std::initializer_list<uint8_t> bytes) {
    for (uint8_t v : bytes) b.push_back(v);  // (vector::insert here trips a GCC 12 warning)
  };
  if (with_prefix) append({'E', 'x', 'i', 'f', 0, 0});
  auto u16 = [&](uint32_t v) { big_endian ? put_be16(b, v) : put_le16(b, v); };
  auto u32 = [&](uint32_t v) { big_endian ? put_be32(b, v) : put_le32(b, v); };
  b.push_back(big_endian ? 'M' : 'I');
  b.push_back(big_endian ? 'M' : 'I');
  u16(42);
  u32(8);  // IFD0 right after the header
  u16(2);  // two entries: an unrelated tag first, then Orientation
  u16(0x010F), u16(2), u32(4), append({'A', 'C', 'M', 0});  // Make = "ACM"
  u16(0x0112), u16(3), u32(1), u16(uint32_t(orientation)), u16(0);
  u32(0);  // no next IFD
  return b;
}

// ----------------------------------------------------------------------------------------- PNG

struct PngSpec {
  int width = 0, height = 0, bit_depth = 8, color_type = PNG_COLOR_TYPE_RGB;
  bool interlace = false;
  std::vector<png_color> palette;
  std::vector<uint8_t> trns_alpha;  // palette tRNS
  bool trns_key = false;
  png_color_16 key{};  // grey / RGB tRNS colour key
  Bytes exif;          // eXIf payload (TIFF block without "Exif\0\0")
};

// `samples` holds rows of packed samples as libpng expects them (16-bit big-endian, sub-byte
// grey packed MSB first).
inline Bytes encode_png(const PngSpec& spec, const Bytes& samples) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  Bytes out;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw std::runtime_error("libpng failed to encode the test image");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        auto* o = static_cast<Bytes*>(png_get_io_ptr(p));
        o->insert(o->end(), data, data + n);
      },
      nullptr);
  png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, spec.color_type,
               spec.interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!spec.palette.empty()) png_set_PLTE(png, info, spec.palette.data(), int(spec.palette.size()));
  if (!spec.trns_alpha.empty())
    png_set_tRNS(png, info, spec.trns_alpha.data(), int(spec.trns_alpha.size()), nullptr);
  if (spec.trns_key) {
    png_color_16 key = spec.key;
    png_set_tRNS(png, info, nullptr, 0, &key);
  }
  if (!spec.exif.empty()) {
    Bytes exif = spec.exif;
    png_set_eXIf_1(png, info, png_uint_32(exif.size()), exif.data());
  }
  png_write_info(png, info);
  size_t row_bytes = png_get_rowbytes(png, info);
  std::vector<png_bytep> rows(spec.height);
  for (int y = 0; y < spec.height; ++y)
    rows[y] = const_cast<png_bytep>(samples.data()) + size_t(y) * row_bytes;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

inline Bytes encode_png_rgb(int width, int height, const Bytes& rgb) {
  PngSpec spec;
  spec.width = width, spec.height = height;
  return encode_png(spec, rgb);
}

// ---------------------------------------------------------------------------------------- JPEG

struct JpegSpec {
  int width = 0, height = 0, components = 3;
  J_COLOR_SPACE in_space = JCS_RGB;
  int quality = 95;
  bool progressive = false;
  Bytes app1;                                 // written as one APP1 segment when not empty
  J_COLOR_SPACE jpeg_space = JCS_UNKNOWN;     // the stored colour space, when not libjpeg's default
  std::vector<std::pair<int, int>> sampling;  // h, v per component, when not libjpeg's default
  int restart_interval = 0;                   // MCUs between restart markers; 0: none
  bool arithmetic = false;                    // arithmetic instead of Huffman coding
};

inline Bytes encode_jpeg(const JpegSpec& spec, const Bytes& samples) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = spec.width;
  cinfo.image_height = spec.height;
  cinfo.input_components = spec.components;
  cinfo.in_color_space = spec.in_space;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, spec.quality, TRUE);
  if (spec.jpeg_space != JCS_UNKNOWN) jpeg_set_colorspace(&cinfo, spec.jpeg_space);
  for (size_t c = 0; c < spec.sampling.size(); ++c) {
    cinfo.comp_info[c].h_samp_factor = spec.sampling[c].first;
    cinfo.comp_info[c].v_samp_factor = spec.sampling[c].second;
  }
  cinfo.restart_interval = unsigned(spec.restart_interval);
  cinfo.arith_code = spec.arithmetic;
  if (spec.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  if (!spec.app1.empty())
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, spec.app1.data(), unsigned(spec.app1.size()));
  const size_t stride = size_t(spec.width) * spec.components;
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(samples.data() + cinfo.next_scanline * stride);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  Bytes out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

// A JPEG written byte by byte, for files no encoder would write: SOI, a quantisation table of
// ones, SOFn (0xC0 baseline, 0xC2 progressive) of `components` full-resolution components,
// Huffman tables DC 0 and AC 0 with one 1-bit code each (DC difference 0, EOB).
inline Bytes jpeg_headers(int width, int height, int components, uint8_t sof = 0xC2) {
  Bytes b = {0xFF, 0xD8, 0xFF, 0xDB};
  put_be16(b, 67);
  b.push_back(0);
  b.resize(b.size() + 64, 1);
  b.push_back(0xFF), b.push_back(sof);
  put_be16(b, uint32_t(8 + 3 * components));
  b.push_back(8);
  put_be16(b, uint32_t(height));
  put_be16(b, uint32_t(width));
  b.push_back(uint8_t(components));
  for (int c = 0; c < components; ++c)
    b.push_back(uint8_t(c + 1)), b.push_back(0x11), b.push_back(0);
  for (uint8_t table_class : {0x00, 0x10}) {
    b.push_back(0xFF), b.push_back(0xC4);
    put_be16(b, 20);
    b.push_back(table_class);
    b.push_back(1);  // one code of length 1
    b.resize(b.size() + 15, 0);
    b.push_back(0);  // its symbol: DC difference category 0 / AC end of block
  }
  return b;
}

// One SOS segment over `components` components (1..components), spectral selection Ss..Se,
// successive approximation Ah/Al, then `data` (the entropy-coded bytes, often none).
inline void jpeg_scan(Bytes& b, int components, int ss, int se, int ah, int al,
                      const Bytes& data = {}) {
  b.push_back(0xFF), b.push_back(0xDA);
  put_be16(b, uint32_t(6 + 2 * components));
  b.push_back(uint8_t(components));
  for (int c = 0; c < components; ++c) b.push_back(uint8_t(c + 1)), b.push_back(0x00);
  b.push_back(uint8_t(ss)), b.push_back(uint8_t(se)), b.push_back(uint8_t(ah << 4 | al));
  b.insert(b.end(), data.begin(), data.end());
}

inline void jpeg_end(Bytes& b) { b.push_back(0xFF), b.push_back(0xD9); }

// ----------------------------------------------------------------------------------------- PNG
// Chunks written by hand, with their CRC, for files libpng would refuse to write.

inline void png_chunk(Bytes& b, const char type[4], const Bytes& data) {
  put_be32(b, uint32_t(data.size()));
  const size_t start = b.size();
  b.insert(b.end(), type, type + 4);
  b.insert(b.end(), data.begin(), data.end());
  put_be32(b, uint32_t(crc32(0, b.data() + start, uInt(b.size() - start))));
}

// Signature and IHDR (8-bit RGB unless told).
inline Bytes png_header(uint32_t width, uint32_t height, uint8_t depth = 8, uint8_t color = 2) {
  Bytes b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  Bytes ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.insert(ihdr.end(), {depth, color, 0, 0, 0});
  png_chunk(b, "IHDR", ihdr);
  return b;
}

// ---------------------------------------------------------------------------------------- WebP

inline Bytes encode_webp(int width, int height, const Bytes& pixels, bool alpha, bool lossless,
                         float quality = 90) {
  uint8_t* buffer = nullptr;
  size_t size = 0;
  int stride = width * (alpha ? 4 : 3);
  if (lossless)
    size = alpha ? WebPEncodeLosslessRGBA(pixels.data(), width, height, stride, &buffer)
                 : WebPEncodeLosslessRGB(pixels.data(), width, height, stride, &buffer);
  else
    size = alpha ? WebPEncodeRGBA(pixels.data(), width, height, stride, quality, &buffer)
                 : WebPEncodeRGB(pixels.data(), width, height, stride, quality, &buffer);
  if (!size) throw std::runtime_error("libwebp failed to encode the test image");
  Bytes out(buffer, buffer + size);
  WebPFree(buffer);
  return out;
}

// Wraps a simple-format WebP (one VP8/VP8L chunk) into the extended format with an EXIF chunk.
inline Bytes webp_with_exif(const Bytes& simple, int width, int height, const Bytes& exif) {
  Bytes chunks;
  chunks.insert(chunks.end(), {'V', 'P', '8', 'X'});
  put_le32(chunks, 10);
  chunks.push_back(0x08);  // EXIF flag
  chunks.insert(chunks.end(), {0, 0, 0});
  auto put24 = [&](uint32_t v) {
    chunks.push_back(uint8_t(v)), chunks.push_back(uint8_t(v >> 8));
    chunks.push_back(uint8_t(v >> 16));
  };
  put24(uint32_t(width - 1));
  put24(uint32_t(height - 1));
  chunks.insert(chunks.end(), simple.begin() + 12, simple.end());  // the VP8/VP8L chunk
  chunks.insert(chunks.end(), {'E', 'X', 'I', 'F'});
  put_le32(chunks, uint32_t(exif.size()));
  chunks.insert(chunks.end(), exif.begin(), exif.end());
  if (exif.size() & 1) chunks.push_back(0);
  Bytes out = {'R', 'I', 'F', 'F'};
  put_le32(out, uint32_t(chunks.size() + 4));
  out.insert(out.end(), {'W', 'E', 'B', 'P'});
  out.insert(out.end(), chunks.begin(), chunks.end());
  return out;
}

// ----------------------------------------------------------------------------------------- BMP

struct BmpSpec {
  int width = 0, height = 0, bits = 24;
  bool top_down = false;
  uint32_t header_size = 40;
  uint32_t compression = 0;
  std::vector<uint32_t> masks;   // BI_BITFIELDS: R, G, B(, A) (in the V4/V5 header if large)
  std::vector<uint8_t> palette;  // B, G, R, 0 quads (B, G, R for the 12-byte header)
};

// `rows` are the file's pixel bytes per image row, top row first, without padding.
inline Bytes encode_bmp(const BmpSpec& spec, const std::vector<Bytes>& rows) {
  const size_t stride = ((size_t(spec.width) * spec.bits + 31) >> 3) & ~size_t(3);
  Bytes pixels;
  for (int i = 0; i < spec.height; ++i) {
    const Bytes& row = rows[spec.top_down ? i : spec.height - 1 - i];
    pixels.insert(pixels.end(), row.begin(), row.end());
    pixels.resize(pixels.size() + stride - row.size(), 0);
  }
  Bytes header;
  put_le32(header, spec.header_size);
  if (spec.header_size == 12) {
    put_le16(header, spec.width), put_le16(header, spec.height), put_le16(header, 1);
    put_le16(header, spec.bits);
  } else {
    put_le32(header, uint32_t(spec.width));
    put_le32(header, uint32_t(spec.top_down ? -spec.height : spec.height));
    put_le16(header, 1), put_le16(header, spec.bits);
    put_le32(header, spec.compression), put_le32(header, uint32_t(pixels.size()));
    put_le32(header, 2835), put_le32(header, 2835);
    uint32_t entries = spec.palette.size() / 4;
    put_le32(header, entries), put_le32(header, entries);
    if (spec.header_size > 40) {
      for (size_t i = 0; i < 4; ++i) put_le32(header, i < spec.masks.size() ? spec.masks[i] : 0);
      header.resize(spec.header_size, 0);
    }
  }
  Bytes extra;
  if (spec.header_size == 40 && spec.compression == 3)
    for (size_t i = 0; i < 3; ++i) put_le32(extra, spec.masks[i]);
  Bytes out = {'B', 'M'};
  uint32_t offset = uint32_t(14 + header.size() + extra.size() + spec.palette.size());
  put_le32(out, uint32_t(offset + pixels.size()));
  put_le32(out, 0);
  put_le32(out, offset);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), extra.begin(), extra.end());
  out.insert(out.end(), spec.palette.begin(), spec.palette.end());
  out.insert(out.end(), pixels.begin(), pixels.end());
  return out;
}

}  // namespace qwenvl::test
