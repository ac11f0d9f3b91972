// JPEG through libjpeg(-turbo) with the settings Pillow decodes with: libjpeg's defaults (ISLOW
// IDCT, fancy upsampling, block smoothing for progressive scans), the library's own colour-space
// guess, RGB / grey / CMYK output. CMYK (and YCCK, which libjpeg turns into CMYK) becomes RGB the
// way Pillow's convert("RGB") does it: Pillow always reads 4-channel JPEGs with Adobe's inverted
// polarity ("CMYK;I") and then applies cmyk2rgb.
//
// Large baseline files are decoded in bands on the thread pool (jpeg_bands.h). Each band is an
// ordinary decompressor with the same settings that skips to its first row, so every row comes
// out of the same libjpeg code as in a single decode: the pixels are identical (tested for every
// fixture and sampling factor in tests/vision/decode_jpeg_bands_test.cpp).
#include <algorithm>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
// jpeglib.h needs size_t and FILE declared first.
#include <jerror.h>
#include <jpeglib.h>

#include "core/error.h"
#include "core/thread_pool.h"
#include "vision/decoded_image.h"
#include "vision/jpeg_bands.h"
#include "vision/large_buffer.h"

namespace qwenvl::vision_detail {
namespace {

struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

// Stops the decompressor with `text` (or libjpeg's own message when null).
[[noreturn]] void stop(j_common_ptr cinfo, const char* text) {
  auto* manager = reinterpret_cast<ErrorManager*>(cinfo->err);
  if (text)
    std::snprintf(manager->message, sizeof manager->message, "%s", text);
  else
    cinfo->err->format_message(cinfo, manager->message);
  std::longjmp(manager->jump, 1);
}

// libjpeg's default error_exit calls exit(); a server cannot. Jump back to the setjmp of the
// function driving this decompressor instead.
[[noreturn]] void on_error(j_common_ptr cinfo) { stop(cinfo, nullptr); }

// Warnings are silent, except a premature end of data: libjpeg would pad the picture with grey,
// where Pillow refuses the file ("image file is truncated"). Other warnings (corrupt data, which
// libjpeg patches over) are counted, and a file that keeps producing them is refused.
void on_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;
  if (cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
  if (++cinfo->err->num_warnings > kMaxJpegWarnings)
    stop(cinfo, "the data is corrupt throughout (too many libjpeg warnings)");
}

// libjpeg calls the progress monitor before consuming each iMCU row of input, so in a multi-scan
// file at least once per scan, after the scan's header is read: the place to stop a file whose
// scans add up to more work than any encoder's would (kMaxJpegScans, kMaxJpegScanSamples).
struct ScanLimit {
  jpeg_progress_mgr base;
  int counted_scans;  // scans whose samples are in `samples`
  int64_t samples;    // every counted scan's components' samples, block padding included
};

void on_progress(j_common_ptr cinfo) {
  if (cinfo->is_decompressor == 0) return;
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  auto* limit = reinterpret_cast<ScanLimit*>(cinfo->progress);
  if (d->input_scan_number == limit->counted_scans) return;
  limit->counted_scans = d->input_scan_number;
  for (int c = 0; c < d->comps_in_scan; ++c) {
    const jpeg_component_info* comp = d->cur_comp_info[c];
    limit->samples += int64_t(comp->width_in_blocks) * comp->height_in_blocks * DCTSIZE2;
  }
  if (d->input_scan_number > kMaxJpegScans || limit->samples > kMaxJpegScanSamples) {
    char text[JMSG_LENGTH_MAX];
    std::snprintf(text, sizeof text,
                  "%d scans of %ux%u pixels are more than any encoder writes (the limits are %d "
                  "scans and %lld G samples in all)",
                  d->input_scan_number, unsigned(d->image_width), unsigned(d->image_height),
                  kMaxJpegScans, static_cast<long long>(kMaxJpegScanSamples / 1'000'000'000));
    stop(cinfo, text);
  }
}

void on_output(j_common_ptr) {}

// One libjpeg decompressor and its error state. Zero-initialised, it is safe to destroy even if
// jpeg_create_decompress never ran (jpeg_destroy skips a null memory manager).
struct Decompressor {
  jpeg_decompress_struct cinfo;
  ErrorManager errors;
  ScanLimit scans;
  bool failed;  // its band stopped on an error (errors.message)
};

// Every decompressor of one decode, destroyed on every way out, exceptions included. Held by
// pointer: libjpeg keeps cinfo.err pointing into the same Decompressor.
class Decompressors {
 public:
  Decompressors() = default;
  Decompressors(const Decompressors&) = delete;
  Decompressors& operator=(const Decompressors&) = delete;
  ~Decompressors() {
    for (auto& d : items_) jpeg_destroy_decompress(&d->cinfo);
  }

  Decompressor& add() {
    Decompressor& d = *items_.emplace_back(std::make_unique<Decompressor>());
    d.cinfo.err = jpeg_std_error(&d.errors.base);
    d.errors.base.error_exit = on_error;
    d.errors.base.emit_message = on_message;
    d.errors.base.output_message = on_output;
    d.scans.base.progress_monitor = on_progress;
    return d;
  }
  Decompressor& operator[](size_t i) { return *items_[i]; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::unique_ptr<Decompressor>> items_;
};

// What the first decompressor learns from the header; the bands' decompressors repeat its
// settings.
struct JpegHeader {
  int width, height, components;
  J_COLOR_SPACE out_color_space;
  int rows_per_imcu_row;
  bool multi_scan;  // progressive or non-interleaved: all entropy decoding is up front
};

// Pillow's cmyk2rgb after the "CMYK;I" unpack (each byte inverted), with its MULDIV255 rounding.
inline uint8_t cmyk_channel(uint8_t inverted_ink, int not_black) {
  int ink = 255 - inverted_ink;
  int t = ink * not_black + 128;
  int v = not_black - (((t >> 8) + t) >> 8);
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

void to_rgb(const uint8_t* src, int components, int width, uint8_t* dst) {
  if (components == 1) {
    for (int x = 0; x < width; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[x];
  } else {
    for (int x = 0; x < width; ++x) {
      const uint8_t* cmyk = &src[4 * x];
      int not_black = cmyk[3];  // Pillow's 255 - K, with K = 255 - the stored byte
      for (int c = 0; c < 3; ++c) dst[3 * x + c] = cmyk_channel(cmyk[c], not_black);
    }
  }
}

// read_header and decode_rows call setjmp and drive libjpeg (open_decompressor runs under their
// setjmp); they hold only trivially destructible locals (buffers belong to the caller), so a
// longjmp out of libjpeg skips no destructor. Each returns false with errors.message filled on
// failure.

void open_decompressor(Decompressor& d, std::span<const uint8_t> bytes) {
  jpeg_decompress_struct& cinfo = d.cinfo;
  jpeg_create_decompress(&cinfo);
  // Past this, libjpeg asks for a backing store, which this build does not have: an error.
  cinfo.mem->max_memory_to_use = kMaxJpegMemory;
  cinfo.progress = &d.scans.base;
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
}

// Every successful decode reads an end-of-image marker, so a file without one is truncated:
// refused before its (possibly huge) declared size is allocated.
bool has_end_marker(std::span<const uint8_t> bytes) {
  static constexpr uint8_t kEoi[2] = {0xFF, 0xD9};
  return std::search(bytes.begin() + std::min<size_t>(bytes.size(), 2), bytes.end(), kEoi,
                     kEoi + 2) != bytes.end();
}

bool read_header(Decompressor& d, std::span<const uint8_t> bytes, DecodedImage& out,
                 JpegHeader& header) {
  jpeg_decompress_struct& cinfo = d.cinfo;
  if (setjmp(d.errors.jump)) return false;
  open_decompressor(d, bytes);
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);

  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    // Pillow keeps the first Exif APP1 whole and appends later ones without their prefix.
    if (m->marker != JPEG_APP0 + 1 || m->data_length < 6 ||
        std::memcmp(m->data, "Exif\0\0", 6) != 0)
      continue;
    const uint8_t* begin = m->data + (out.exif.empty() ? 0 : 6);
    const uint8_t* end = m->data + m->data_length;
    out.exif.insert(out.exif.end(), begin, end);
  }

  int components = cinfo.num_components;
  if (components == 1) {
    cinfo.out_color_space = JCS_GRAYSCALE;
  } else if (components == 3) {
    cinfo.out_color_space = JCS_RGB;
  } else if (components == 4) {
    cinfo.out_color_space = JCS_CMYK;
  } else {
    std::snprintf(d.errors.message, sizeof d.errors.message, "JPEG with %d colour components",
                  components);
    return false;
  }
  // The caller checks the size (check_image_size) before anything is allocated for it.
  jpeg_calc_output_dimensions(&cinfo);
  header.width = int(cinfo.output_width);
  header.height = int(cinfo.output_height);
  header.components = cinfo.output_components;
  header.out_color_space = cinfo.out_color_space;
  // Unscaled output: an iMCU row is max_v_samp_factor blocks of DCTSIZE rows.
  header.rows_per_imcu_row = cinfo.max_v_samp_factor * DCTSIZE;
  header.multi_scan = jpeg_has_multiple_scans(&cinfo);
  return true;
}

// Decodes output rows [first, end) into out.pixels. A band after the first opens its own
// decompressor and skips to `first`; the one that reaches the bottom also reads up to the EOI
// marker, so a file cut just before it fails as in a single decode. `scratch` holds one row of
// grey or CMYK samples (unused for RGB, which is read in place). One row per
// jpeg_read_scanlines call: asking for 16 is no faster with one band and 5-8% slower with two
// (libjpeg-turbo 2.1.5, 2-core VM); fancy upsampling has no spare-row copy to save.
bool decode_rows(Decompressor& d, std::span<const uint8_t> bytes, const JpegHeader& header,
                 bool opened, int first, int end, DecodedImage& out, uint8_t* scratch) {
  jpeg_decompress_struct& cinfo = d.cinfo;
  if (setjmp(d.errors.jump)) return false;
  if (!opened) {
    open_decompressor(d, bytes);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = header.out_color_space;
  }
  jpeg_start_decompress(&cinfo);
  if (first > 0) jpeg_skip_scanlines(&cinfo, JDIMENSION(first));

  const bool in_place = header.components == 3;
  while (int(cinfo.output_scanline) < end) {
    uint8_t* dst = out.pixels.data() + size_t(cinfo.output_scanline) * header.width * 3;
    JSAMPROW target = in_place ? dst : scratch;
    if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) {  // only suspending sources return 0
      std::snprintf(d.errors.message, sizeof d.errors.message, "libjpeg returned no rows");
      return false;
    }
    if (!in_place) to_rgb(scratch, header.components, header.width, dst);
  }
  if (end == header.height) jpeg_finish_decompress(&cinfo);
  return true;
}

// The header, read by decoders[0] and checked before anything is allocated for the pixels: out
// gets the EXIF block and the size, no pixels.
DecodedImage read_checked_header(Decompressors& decoders, std::span<const uint8_t> bytes,
                                 const std::string& name, JpegHeader& header) {
  DecodedImage out;
  if (!read_header(decoders.add(), bytes, out, header))
    fail("cannot decode JPEG ", name, ": ", decoders[0].errors.message);
  check_image_size(header.width, header.height, name);
  if (!has_end_marker(bytes))
    fail("cannot decode JPEG ", name,
         ": Premature end of JPEG file (no end-of-image marker: the file is truncated)");
  out.width = header.width;
  out.height = header.height;
  return out;
}

DecodedImage decode(std::span<const uint8_t> bytes, const std::string& name, int forced_bands,
                    ThreadPool& pool, int* bands_used) {
  Decompressors decoders;
  JpegHeader header{};
  DecodedImage out = read_checked_header(decoders, bytes, name, header);

  std::vector<int> starts{0};
  if (!header.multi_scan) {  // multi-scan files entropy-decode everything in start_decompress
    const int64_t pixels = int64_t(header.width) * header.height;
    const double entropy = jpeg_entropy_fraction(bytes.size(), pixels);
    const int bands =
        forced_bands > 0 ? forced_bands : jpeg_band_count(pixels, entropy, pool.size());
    starts = jpeg_band_starts(header.height, header.rows_per_imcu_row, bands, entropy);
  }
  const int64_t bands = int64_t(starts.size());
  if (bands_used) *bands_used = int(bands);
  while (int64_t(decoders.size()) < bands) decoders.add();

  out.width = header.width;
  out.height = header.height;
  out.channels = 3;
  resize_pixels(out.pixels, size_t(out.width) * out.height * 3);
  const size_t scratch_per_band = size_t(header.width) * header.components;
  std::vector<uint8_t> scratch(header.components == 3 ? 0 : size_t(bands) * scratch_per_band);

  // A chunk of consecutive bands is decoded by its first band's decompressor in one go: when the
  // pool is busy and runs the whole loop on this thread, that is exactly the single decode.
  pool.parallel_for(bands, 1, [&](int64_t begin, int64_t stop) {
    Decompressor& d = decoders[size_t(begin)];
    const int first = starts[size_t(begin)];
    const int end = stop < bands ? starts[size_t(stop)] : header.height;
    uint8_t* rows = scratch.empty() ? nullptr : scratch.data() + size_t(begin) * scratch_per_band;
    d.failed = !decode_rows(d, bytes, header, begin == 0, first, end, out, rows);
  });
  // Every band entropy-decodes the stream from its start, so a failing band stopped at the first
  // error in the stream, where a single decode stops too; the lowest such band stands for all.
  for (size_t k = 0; k < decoders.size(); ++k)
    if (decoders[k].failed) fail("cannot decode JPEG ", name, ": ", decoders[k].errors.message);
  return out;
}

}  // namespace

DecodedImage probe_jpeg(std::span<const uint8_t> bytes, const std::string& name) {
  Decompressors decoders;
  JpegHeader header{};
  return read_checked_header(decoders, bytes, name, header);
}

DecodedImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& name) {
  return decode(bytes, name, 0, ThreadPool::global(), nullptr);
}

DecodedImage decode_jpeg_in_bands(std::span<const uint8_t> bytes, const std::string& name,
                                  int bands, ThreadPool& pool, int* bands_used) {
  return decode(bytes, name, std::max(1, bands), pool, bands_used);
}

}  // namespace qwenvl::vision_detail
