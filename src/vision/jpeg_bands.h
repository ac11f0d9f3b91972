#pragma once
// Decoding a large baseline JPEG in horizontal bands on several threads. Each band has its own
// libjpeg decompressor, which jpeg_skip_scanlines to the band's first row and decodes from there.
// Skipping still entropy-decodes every row above (Huffman data is one sequential stream; only the
// IDCT, upsampling and colour conversion are skipped), so band k costs
//   entropy(rows above it) + full decode(its own rows)
// and the bands are sized unequally, earlier ones bigger, so that all of them finish together.
// The split cannot beat the entropy decoding of the whole picture: with a fraction e of a row's
// decode time spent in entropy decoding, the wall time tends to e times the single decode.
// Rows come out identical to a single decode: libjpeg-turbo (2.1.5) gave identical rows after a
// skip to every start row we tried, aligned or not, for all sampling layouts (for 2x2 and 1x2
// fancy upsampling it reads and discards the iMCU row above the target to rebuild the context
// rows). Bands still start on iMCU rows, so no partial iMCU row is decoded and thrown away.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vision/decoded_image.h"

namespace qwenvl {
class ThreadPool;
}

namespace qwenvl::vision_detail {

// Below this many pixels the single decoder is used. On a 2-core VM two bands save only
// 0.05-0.2 ms on 0.14-0.26 MP pictures, for ~40% more CPU time; at 1280x960 they save ~1 ms of a
// q90 photo's 4.8 ms, and more on larger pictures.
inline constexpr int64_t kMinBandedJpegPixels = 1'000'000;

// The fraction of a baseline JPEG's decode time spent in entropy decoding, estimated from its
// compressed size: Huffman decoding costs per pixel and per byte, the rest per pixel only.
double jpeg_entropy_fraction(size_t jpeg_bytes, int64_t pixels);

// How many bands to split a baseline JPEG of `pixels` into on `threads` threads: 1 below
// kMinBandedJpegPixels, otherwise only as many as still shorten the wall time noticeably.
int jpeg_band_count(int64_t pixels, double entropy_fraction, int threads);

// The first output row of each of `bands` bands (the first is 0): strictly increasing multiples
// of rows_per_imcu_row below `height`, shrinking geometrically by (1 - entropy_fraction) so that
// every band's skip + decode takes about as long. Fewer than `bands` when the picture has fewer
// iMCU rows.
std::vector<int> jpeg_band_starts(int height, int rows_per_imcu_row, int bands,
                                  double entropy_fraction);

// decode_jpeg with the number of bands forced (1: the single decoder), run on `pool`; sets
// *bands_used to the number it decoded (fewer for a picture of fewer iMCU rows, 1 for progressive
// and multi-scan files). For tests and benchmarks: decode_jpeg chooses the count itself.
DecodedImage decode_jpeg_in_bands(std::span<const uint8_t> bytes, const std::string& name,
                                  int bands, ThreadPool& pool, int* bands_used = nullptr);

}  // namespace qwenvl::vision_detail
