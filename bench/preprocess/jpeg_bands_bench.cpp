// JPEG decoding in bands (src/vision/jpeg_bands.h) against the single decoder:
//   jpeg_bands_bench [IMAGE.jpg ...] [--runs N] [--max-bands N]
// Without IMAGE it uses tests/fixtures/images/large_5000x4000.jpg. For each file, best of N runs:
//  - libjpeg alone, one decompressor: all rows read 1 and 16 per jpeg_read_scanlines call, and
//    jpeg_skip_scanlines over the whole picture (entropy decoding only), giving the entropy
//    fraction e that the band plan estimates from the file size;
//  - decode_jpeg_in_bands with 1..N bands, each count on a pool of that many threads (counts above
//    this machine's cores are oversubscribed: read those from the next table instead);
//  - for the planned bands of each count, every band timed alone on this thread (skip to its first
//    row + decode its rows): on a host with at least that many free cores the banded wall time is
//    about the slowest band plus the output buffer's allocation.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>

#include "core/error.h"
#include "core/thread_pool.h"
#include "vision/image.h"
#include "vision/jpeg_bands.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace vd = qwenvl::vision_detail;

double best_ms(int runs, const std::function<void()>& fn) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return best;
}

struct Layout {
  int width, height, components, rows_per_imcu_row;
};

// Decodes rows [first, end) the way one band does (libjpeg's default error handler: the bench's
// inputs are well-formed). rows_per_read 0 skips [first, end - 1) and reads the last row (libjpeg
// does no work at all for a skip that reaches the bottom).
void libjpeg_rows(const std::vector<uint8_t>& bytes, int first, int end, int rows_per_read,
                  Layout* layout = nullptr) {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.num_components == 3) cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  if (layout)
    *layout = {int(cinfo.output_width), int(cinfo.output_height), cinfo.output_components,
               cinfo.max_v_samp_factor * DCTSIZE};
  end = std::min(end, int(cinfo.output_height));
  int skip = first;
  if (rows_per_read == 0) skip = end - 1, rows_per_read = 1;
  if (skip > 0) jpeg_skip_scanlines(&cinfo, JDIMENSION(skip));
  const size_t stride = size_t(cinfo.output_width) * cinfo.output_components;
  std::vector<uint8_t> buffer(stride * rows_per_read);
  std::vector<JSAMPROW> rows(rows_per_read);
  for (int i = 0; i < rows_per_read; ++i) rows[i] = buffer.data() + i * stride;
  while (int(cinfo.output_scanline) < end)
    jpeg_read_scanlines(&cinfo, rows.data(),
                        JDIMENSION(std::min(rows_per_read, end - int(cinfo.output_scanline))));
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
}

void bench_file(const std::string& path, int runs, int max_bands) {
  std::vector<uint8_t> bytes = qwenvl::read_image_file(path);
  Layout l{};
  libjpeg_rows(bytes, 0, 0, 1, &l);
  const int64_t pixels = int64_t(l.width) * l.height;
  std::printf("\n%s: %dx%d, %d components, %.2f MB (%.3f bytes/pixel), iMCU row %d rows\n",
              path.c_str(), l.width, l.height, l.components, bytes.size() / 1e6,
              double(bytes.size()) / double(pixels), l.rows_per_imcu_row);

  double rows1 = best_ms(runs, [&] { libjpeg_rows(bytes, 0, l.height, 1); });
  double rows16 = best_ms(runs, [&] { libjpeg_rows(bytes, 0, l.height, 16); });
  double skip = best_ms(runs, [&] { libjpeg_rows(bytes, 0, l.height, 0); });
  const double estimate = vd::jpeg_entropy_fraction(bytes.size(), pixels);
  std::printf(
      "libjpeg, one decompressor: read 1 row/call %.2f ms, 16 rows/call %.2f ms (%.3fx);"
      " skip all %.2f ms\n",
      rows1, rows16, rows1 / rows16, skip);
  std::printf("entropy fraction: measured %.2f, estimated from the file size %.2f\n", skip / rows16,
              estimate);

  std::printf("%-6s %10s %8s   %s\n", "bands", "wall ms", "vs 1",
              "(decode_jpeg_in_bands, pool = bands)");
  double single = 0;
  for (int bands = 1; bands <= max_bands; ++bands) {
    qwenvl::ThreadPool pool(bands);
    double ms = best_ms(runs, [&] { vd::decode_jpeg_in_bands(bytes, path, bands, pool); });
    if (bands == 1) single = ms;
    std::printf("%-6d %10.2f %8.3f\n", bands, ms, single / ms);
  }

  std::printf("each band alone on one thread (start row: ms), slowest, and single / slowest:\n");
  for (int bands : {2, 3, 4, 6, 8, 12, 16}) {
    std::vector<int> starts = vd::jpeg_band_starts(l.height, l.rows_per_imcu_row, bands, estimate);
    double slowest = 0;
    std::string line;
    for (size_t k = 0; k < starts.size(); ++k) {
      int end = k + 1 < starts.size() ? starts[k + 1] : l.height;
      double ms = best_ms(runs, [&] { libjpeg_rows(bytes, starts[k], end, 16); });
      slowest = std::max(slowest, ms);
      char part[48];
      std::snprintf(part, sizeof part, " %d:%.1f", starts[k], ms);
      line += part;
    }
    std::printf("%2zu bands:%s | slowest %.2f ms, %.2fx\n", starts.size(), line.c_str(), slowest,
                rows16 / slowest);
  }
  std::printf("auto plan on 16 threads: %d bands\n", vd::jpeg_band_count(pixels, estimate, 16));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int runs = 7, max_bands = 4;
    std::vector<std::string> paths;
    for (int i = 1; i < argc; ++i) {
      if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
        runs = std::atoi(argv[++i]);
      else if (!std::strcmp(argv[i], "--max-bands") && i + 1 < argc)
        max_bands = std::atoi(argv[++i]);
      else
        paths.push_back(argv[i]);
    }
    if (paths.empty())
      paths.push_back(std::string(QWENVL_SOURCE_DIR) +
                      "/tests/fixtures/images/large_5000x4000.jpg");
    std::printf("best of %d runs; this machine: %d hardware threads\n", runs,
                qwenvl::ThreadPool::global().size());
    for (const std::string& path : paths) bench_file(path, runs, max_bands);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "jpeg_bands_bench: %s\n", e.what());
    return 1;
  }
}
