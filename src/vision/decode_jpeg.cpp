// JPEG through libjpeg(-turbo) with the settings Pillow decodes with: libjpeg's defaults (ISLOW
// IDCT, fancy upsampling, block smoothing for progressive scans), the library's own colour-space
// guess, RGB / grey / CMYK output. CMYK (and YCCK, which libjpeg turns into CMYK) becomes RGB the
// way Pillow's convert("RGB") does it: Pillow always reads 4-channel JPEGs with Adobe's inverted
// polarity ("CMYK;I") and then applies cmyk2rgb.
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>
// jpeglib.h needs size_t and FILE declared first.
#include <jerror.h>
#include <jpeglib.h>

#include "core/error.h"
#include "vision/decoded_image.h"
#include "vision/large_buffer.h"

namespace qwenvl::vision_detail {
namespace {

struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

// libjpeg's default error_exit calls exit(); a server cannot. Jump back to decode_jpeg instead.
[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* manager = reinterpret_cast<ErrorManager*>(cinfo->err);
  cinfo->err->format_message(cinfo, manager->message);
  std::longjmp(manager->jump, 1);
}

// Warnings are silent, except a premature end of data: libjpeg would pad the picture with grey,
// where Pillow refuses the file ("image file is truncated").
void on_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
}

void on_output(j_common_ptr) {}

// Pillow's cmyk2rgb after the "CMYK;I" unpack (each byte inverted), with its MULDIV255 rounding.
inline uint8_t cmyk_channel(uint8_t inverted_ink, int not_black) {
  int ink = 255 - inverted_ink;
  int t = ink * not_black + 128;
  int v = not_black - (((t >> 8) + t) >> 8);
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Everything that touches libjpeg lives here, with only trivially destructible locals (the buffers
// belong to the caller), so a longjmp out of libjpeg skips no destructor. Returns false with
// errors.message filled on failure.
bool run_decoder(jpeg_decompress_struct& cinfo, ErrorManager& errors,
                 std::span<const uint8_t> bytes, DecodedImage& out, std::vector<uint8_t>& row) {
  if (setjmp(errors.jump)) return false;
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
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
    std::snprintf(errors.message, sizeof errors.message, "JPEG with %d colour components",
                  components);
    return false;
  }
  // Throws through libjpeg's frames would be undefined; check the size by hand first.
  int64_t w = cinfo.image_width, h = cinfo.image_height;
  if (w <= 0 || h <= 0 || w * h > kMaxImagePixels) {
    std::snprintf(errors.message, sizeof errors.message, "image size %lldx%lld out of range",
                  static_cast<long long>(w), static_cast<long long>(h));
    return false;
  }
  jpeg_start_decompress(&cinfo);
  out.width = int(cinfo.output_width);
  out.height = int(cinfo.output_height);
  out.channels = 3;
  resize_pixels(out.pixels, size_t(out.width) * out.height * 3);
  row.resize(size_t(out.width) * cinfo.output_components);

  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* dst = out.pixels.data() + size_t(cinfo.output_scanline) * out.width * 3;
    JSAMPROW target = components == 3 ? dst : row.data();
    jpeg_read_scanlines(&cinfo, &target, 1);
    if (components == 1) {
      for (int x = 0; x < out.width; ++x) dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = row[x];
    } else if (components == 4) {
      for (int x = 0; x < out.width; ++x) {
        const uint8_t* cmyk = &row[4 * x];
        int not_black = cmyk[3];  // Pillow's 255 - K, with K = 255 - the stored byte
        for (int c = 0; c < 3; ++c) dst[3 * x + c] = cmyk_channel(cmyk[c], not_black);
      }
    }
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

}  // namespace

DecodedImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& name) {
  jpeg_decompress_struct cinfo;
  ErrorManager errors;
  errors.message[0] = '\0';
  cinfo.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = on_error;
  errors.base.emit_message = on_message;
  errors.base.output_message = on_output;
  jpeg_create_decompress(&cinfo);
  DecodedImage out;
  std::vector<uint8_t> row;
  bool ok = false;
  try {
    ok = run_decoder(cinfo, errors, bytes, out, row);
  } catch (...) {  // std::bad_alloc from a vector: clean up libjpeg, then pass it on
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  jpeg_destroy_decompress(&cinfo);
  if (!ok) fail("cannot decode JPEG ", name, ": ", errors.message);
  return out;
}

}  // namespace qwenvl::vision_detail
