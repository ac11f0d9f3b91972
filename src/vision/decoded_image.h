#pragma once
// What one format decoder hands to load_image: 8-bit RGB or RGBA (straight, not premultiplied)
// exactly as Pillow's decoder + mode conversion would hold it, plus the raw EXIF block if the file
// carries one. Orientation and alpha are dealt with afterwards, in one place (load_image.cpp).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vision/image.h"

namespace qwenvl::vision_detail {

struct DecodedImage {
  int width = 0, height = 0;
  int channels = 3;             // 3: RGB, 4: RGBA
  std::vector<uint8_t> pixels;  // width * height * channels
  std::vector<uint8_t> exif;    // TIFF block, with or without the "Exif\0\0" prefix; may be empty
};

// What a file may ask of us. Every cap is checked from the header before anything is allocated
// or decoded, so that no file, hostile or not, can crash the process, hang it or exhaust memory.
//
// Each side at most 65,535: a JPEG stores 16-bit sides (libjpeg refuses more than 65,500), WebP at
// most 16,384, while PNG and BMP allow 2^31 - 1, whose square overflows 64 bits. Checking each
// side first keeps width * height exact.
inline constexpr int64_t kMaxImageSide = 65'535;
// The largest image we accept; a 200-megapixel RGBA frame is 800 MB already (Pillow refuses
// 179 MP as a decompression bomb).
inline constexpr int64_t kMaxImagePixels = 200'000'000;

// JPEG: every scan of a progressive (or multi-scan) file walks the coefficients of each of its
// components, data or not, so a small file of empty scans costs minutes. Encoders write about 10
// scans (libjpeg's jpeg_simple_progression: 10 for YCbCr, 18 for CMYK: 12 to 24 full-resolution
// component passes); we refuse a file past 1,000 scans, or whose scans add up to more than 10 G
// samples (50 full-resolution component passes at the pixel cap, 1-2 s of libjpeg on one core).
inline constexpr int kMaxJpegScans = 1'000;
inline constexpr int64_t kMaxJpegScanSamples = 10'000'000'000;
// libjpeg warns, and goes on, for each corrupt stretch of data; a file with more warnings than
// this is refused rather than patched over again and again.
inline constexpr int kMaxJpegWarnings = 1'000;
// libjpeg's own memory (a multi-scan file's coefficients: 2 bytes per sample, at most 1.6 GB for
// 4 full-resolution components at the pixel cap), on top of the output pixels.
inline constexpr long kMaxJpegMemory = 2L << 30;

// PNG: libpng's limits (png_set_user_limits, png_set_chunk_cache_max, png_set_chunk_malloc_max).
// Sides as kMaxImageSide; at most 1,000 ancillary chunks kept and 8 MB per chunk: an iCCP profile
// or eXIf block is kilobytes, and a compressed text chunk or profile that would inflate past
// 8 MB is dropped (libpng's benign error) instead of being inflated.
inline constexpr int kMaxPngAncillaryChunks = 1'000;
inline constexpr size_t kMaxPngChunkBytes = 8'000'000;
// Deflate turns n bytes into at most 1,032 n (a 258-byte match in 2 bits), so a PNG whose IDAT
// chunks are too short for its declared size is truncated: refused before allocating its pixels.
inline constexpr int64_t kMaxDeflateRatio = 1'032;

// True when 0 < width, height <= kMaxImageSide and width * height <= kMaxImagePixels.
bool image_size_ok(int64_t width, int64_t height);

// Throws Error unless image_size_ok. Decoders call it with the header's size before allocating
// anything (inside libjpeg / libpng callbacks, where a throw cannot pass, they test image_size_ok).
void check_image_size(int64_t width, int64_t height, const std::string& name);

// The decoder for the file's magic bytes (never its extension); Error naming the format for
// GIF, TIFF, HEIF, AVIF and JPEG 2000, or when no format matches.
ImageFormat sniff_format(std::span<const uint8_t> bytes, const std::string& name);

DecodedImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage decode_png(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage decode_webp(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage decode_bmp(std::span<const uint8_t> bytes, const std::string& name);

// The decoders' header reading and checks alone: width, height and exif (channels where cheap),
// no pixels. For probe_image.
DecodedImage probe_jpeg(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage probe_png(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage probe_webp(std::span<const uint8_t> bytes, const std::string& name);
DecodedImage probe_bmp(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace qwenvl::vision_detail
