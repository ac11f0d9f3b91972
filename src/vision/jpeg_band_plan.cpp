// Where to cut a baseline JPEG into bands for decode_jpeg (see jpeg_bands.h for why bands cost
// what they cost).
#include <algorithm>
#include <cmath>

#include "vision/jpeg_bands.h"

namespace qwenvl::vision_detail {
namespace {

// Fitted with bench_jpeg_bands (libjpeg-turbo 2.1.5, a 2-core VM) to four 4:2:0 files of 1.2 to
// 20 MP and 0.045 to 0.32 bytes per pixel: skipping (entropy decoding only) costs about 0.26 ns
// per pixel plus 7.8 ns per compressed byte, the IDCT, upsampling and colour conversion about
// 1.1 ns per pixel more. The estimates land within 0.05 of the measured fractions (0.34-0.70).
constexpr double kEntropyNsPerPixel = 0.26;
constexpr double kEntropyNsPerByte = 7.8;
constexpr double kReconstructNsPerPixel = 1.1;

// Bands are added until the last one would shorten the wall time by under ~5%: with n bands it is
// e / (1 - (1 - e)^n) of the single decode, so (1 - e)^n <= 0.05.
constexpr double kWallTimeLeftOver = 0.05;
// Past this, extra bands mostly add CPU time (each one entropy-decodes everything above it).
constexpr int kMaxBands = 8;

}  // namespace

double jpeg_entropy_fraction(size_t jpeg_bytes, int64_t pixels) {
  if (pixels <= 0) return 1.0;
  double bytes_per_pixel = double(jpeg_bytes) / double(pixels);
  double entropy = kEntropyNsPerPixel + kEntropyNsPerByte * bytes_per_pixel;
  return entropy / (entropy + kReconstructNsPerPixel);
}

int jpeg_band_count(int64_t pixels, double entropy_fraction, int threads) {
  if (pixels < kMinBandedJpegPixels || threads < 2) return 1;
  double keep = 1.0 - std::clamp(entropy_fraction, 0.05, 0.95);
  int useful = int(std::ceil(std::log(kWallTimeLeftOver) / std::log(keep)));
  return std::clamp(useful, 1, std::min(threads, kMaxBands));
}

std::vector<int> jpeg_band_starts(int height, int rows_per_imcu_row, int bands,
                                  double entropy_fraction) {
  const int imcu_rows = (height + rows_per_imcu_row - 1) / rows_per_imcu_row;
  bands = std::clamp(bands, 1, std::max(1, imcu_rows));
  // Equal wall time T for every band: band k's length is T - e * start_k, so the lengths shrink
  // by (1 - e) from one band to the next and start_k = H (1 - q^k) / (1 - q^n), q = 1 - e.
  const double q = 1.0 - std::clamp(entropy_fraction, 0.01, 0.99);
  const double whole = 1.0 - std::pow(q, bands);
  std::vector<int> starts(bands, 0);
  for (int k = 1; k < bands; ++k) {
    double ideal = imcu_rows * (1.0 - std::pow(q, k)) / whole;
    int lowest = starts[k - 1] / rows_per_imcu_row + 1;
    int highest = imcu_rows - (bands - k);  // leave one iMCU row for each later band
    starts[k] = std::clamp(int(std::lround(ideal)), lowest, highest) * rows_per_imcu_row;
  }
  return starts;
}

}  // namespace qwenvl::vision_detail
