// A deterministic mutation fuzzer over the image decoders. Seed files: the fixture images of each
// format up to 300 KB (JPEG baseline / progressive / grey / CMYK / 4:2:2, PNG palette / grey /
// 16-bit / alpha, WebP lossy / lossless / alpha / EXIF, BMP 8 / 24 top-down) and a few written
// here (BMP 32-bit with alpha, interlaced 16-bit PNG, arithmetic-coded and restart-marker JPEGs).
// Each case applies one to three mutations (bit flips, interesting bytes, truncation, a corrupted
// segment / chunk length, header dimensions set to huge, zero or negative values, a repeated
// segment, an inserted or deleted range) and calls probe_image and decode_image. Each call must
// return an image within the size caps or throw qwenvl::Error: never crash, hang, or throw
// anything else. When both succeed they must agree on the size, and a file that decodes must
// probe.
//
// Every case is named by its seed file and case number and is fully determined by them; a
// failure prints both. QWENVL_FUZZ_CASE=<file>:<case> runs that one case (and prints the
// mutation), QWENVL_FUZZ_CASES=<n> runs n cases per seed file for a longer search,
// QWENVL_FUZZ_LOG=1 prints every case's outcome; a crash under a sanitizer prints the
// case being run from the death callback.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "image_writers.h"
#include "vision/decoded_image.h"
#include "vision/image.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define QWENVL_FUZZ_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define QWENVL_FUZZ_SANITIZED 1
#endif
#endif
#ifdef QWENVL_FUZZ_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

namespace qwenvl {
namespace {

namespace fs = std::filesystem;
using test::Bytes;

constexpr int kCasesPerSeed = 180;
constexpr size_t kMaxSeedBytes = 300'000;
// Far above any case's time (the slowest decode a few hundred ms under ASan): a case this slow
// is a hang in the making.
constexpr double kMaxCaseSeconds = 20.0;

struct Seed {
  std::string name;
  Bytes bytes;
};

// The case being run, for the crash handlers (a fixed buffer: they may not allocate).
char g_current_case[256] = "none";

void print_current_case() {
  const char prefix[] = "\nimage_fuzz_test crashed in case ";
  (void)!write(2, prefix, sizeof prefix - 1);
  (void)!write(2, g_current_case, std::strlen(g_current_case));
  (void)!write(2, "\n", 1);
}

#ifdef QWENVL_FUZZ_SANITIZED
void install_crash_reporter() { __sanitizer_set_death_callback(print_current_case); }
#else
void on_fatal_signal(int signal) {
  print_current_case();
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

void install_crash_reporter() {
  for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(s, on_fatal_signal);
}
#endif

std::vector<Seed> seed_files() {
  std::vector<Seed> seeds;
  const fs::path dir = fs::path(QWENVL_FIXTURES_DIR) / "images";
  for (const char* name :
       {"astronaut.jpg", "astronaut_progressive.jpg", "chelsea_422.jpg", "coffee_grey.jpg",
        "coffee_cmyk.jpg", "exif6.jpg", "tiny_5x7.png", "banker_70x42.png", "palette_trns.png",
        "bilevel.png", "grey16.png", "grey_alpha.png", "webp_lossy.webp", "webp_lossy_alpha.webp",
        "webp_lossless_alpha.webp", "webp_exif6.webp", "bmp8.bmp", "bmp24_topdown.bmp"}) {
    const fs::path path = dir / name;
    if (!fs::exists(path) || fs::file_size(path) > kMaxSeedBytes) continue;
    seeds.push_back({name, read_image_file(path.string())});
  }
  // Layouts the small fixtures lack, written here.
  test::BmpSpec bmp;
  bmp.width = 13, bmp.height = 7, bmp.bits = 32, bmp.header_size = 108, bmp.compression = 3;
  bmp.masks = {0xFF0000, 0xFF00, 0xFF, 0xFF000000};
  std::vector<Bytes> rows;
  for (int y = 0; y < 7; ++y) rows.push_back(test::random_bytes(13 * 4, 100 + y));
  seeds.push_back({"generated_bmp32_alpha.bmp", test::encode_bmp(bmp, rows)});
  test::PngSpec png;
  png.width = 23, png.height = 17, png.bit_depth = 16, png.interlace = true;
  png.exif = test::exif_block(6, true, false);
  seeds.push_back({"generated_rgb16_interlaced.png",
                   test::encode_png(png, test::random_bytes(23 * 17 * 6, 7))});
  test::JpegSpec jpeg;
  jpeg.width = 40, jpeg.height = 24, jpeg.arithmetic = true;
  seeds.push_back(
      {"generated_arithmetic.jpg", test::encode_jpeg(jpeg, test::random_bytes(40 * 24 * 3, 8))});
  jpeg.arithmetic = false, jpeg.restart_interval = 2, jpeg.progressive = true;
  jpeg.app1 = test::exif_block(8, false);
  seeds.push_back({"generated_restarts_progressive.jpg",
                   test::encode_jpeg(jpeg, test::random_bytes(40 * 24 * 3, 9))});
  return seeds;
}

// A length field inside a file and the segment (or chunk) it belongs to.
struct Field {
  size_t at;                 // first byte of the field
  int bytes;                 // 2 or 4
  bool big_endian;           // JPEG, PNG: big; WebP, BMP: little
  size_t begin, end;         // the whole segment, header included
  std::vector<size_t> dims;  // for size fields: where the width and height live (same width)
};

uint32_t read_field(const Bytes& b, size_t at, int bytes, bool big) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint32_t(b[at + i]) << (big ? 8 * (bytes - 1 - i) : 8 * i);
  return v;
}

void write_field(Bytes& b, size_t at, int bytes, bool big, uint32_t v) {
  for (int i = 0; i < bytes && at + i < b.size(); ++i)
    b[at + i] = uint8_t(v >> (big ? 8 * (bytes - 1 - i) : 8 * i));
}

// The length fields of a file's segments, and (as the entry with dims) where its size is stored.
std::vector<Field> structure(const Bytes& b) {
  std::vector<Field> fields;
  const size_t n = b.size();
  if (n > 4 && b[0] == 0xFF && b[1] == 0xD8) {  // JPEG markers up to EOI, skipping scan data
    for (size_t pos = 2; pos + 4 <= n;) {
      if (b[pos] != 0xFF) {  // entropy-coded data: find the next marker
        ++pos;
        continue;
      }
      const uint8_t m = b[pos + 1];
      if (m == 0x00 || m == 0xFF || (m >= 0xD0 && m <= 0xD7)) {
        pos += m == 0xFF ? 1 : 2;
        continue;
      }
      if (m == 0xD9) break;
      const size_t len = (size_t(b[pos + 2]) << 8) | b[pos + 3];
      Field f{pos + 2, 2, true, pos, std::min(n, pos + 2 + len), {}};
      if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
        f.dims = {pos + 7, pos + 5};  // SOFn: height then width
      fields.push_back(f);
      pos += 2 + len;
    }
  } else if (n > 8 && b[0] == 0x89 && b[1] == 'P') {  // PNG chunks
    for (size_t pos = 8; pos + 12 <= n;) {
      const size_t len = read_field(b, pos, 4, true);
      Field f{pos, 4, true, pos, std::min(n, pos + 12 + len), {}};
      if (std::memcmp(&b[pos + 4], "IHDR", 4) == 0) f.dims = {pos + 8, pos + 12};
      fields.push_back(f);
      if (len > n) break;
      pos += 12 + len;
    }
  } else if (n > 12 && b[0] == 'R' && b[8] == 'W') {  // RIFF, then WebP chunks
    fields.push_back({4, 4, false, 0, n, {}});
    for (size_t pos = 12; pos + 8 <= n;) {
      const size_t len = read_field(b, pos + 4, 4, false);
      Field f{pos + 4, 4, false, pos, std::min(n, pos + 8 + len + (len & 1)), {}};
      fields.push_back(f);
      if (len > n) break;
      pos += 8 + len + (len & 1);
    }
  } else if (n > 54 && b[0] == 'B') {  // BMP: file size, pixel offset, header size, colours
    for (size_t at : {size_t(2), size_t(10), size_t(14), size_t(46)})
      fields.push_back({at, 4, false, 0, n, {}});
    fields.push_back({18, 4, false, 0, n, {18, 22}});
  }
  return fields;
}

// Where the WebP bitstream keeps its size: VP8X canvas (24-bit), VP8L (14-bit packed), VP8 frame
// (14-bit + scale): returns the bytes to overwrite, for a "set the size" mutation.
void set_webp_size(Bytes& b, uint32_t w, uint32_t h) {
  for (size_t pos = 12; pos + 8 <= b.size();) {
    const size_t len = read_field(b, pos + 4, 4, false);
    if (std::memcmp(&b[pos], "VP8X", 4) == 0 && pos + 18 <= b.size()) {
      write_field(b, pos + 12, 3, false, w - 1);
      write_field(b, pos + 15, 3, false, h - 1);
    } else if (std::memcmp(&b[pos], "VP8L", 4) == 0 && pos + 13 <= b.size()) {
      uint32_t bits = read_field(b, pos + 9, 4, false);
      bits = (bits & 0xF0000000u) | ((w - 1) & 0x3FFF) | ((h - 1) & 0x3FFF) << 14;
      write_field(b, pos + 9, 4, false, bits);
    } else if (std::memcmp(&b[pos], "VP8 ", 4) == 0 && pos + 18 <= b.size()) {
      write_field(b, pos + 14, 2, false, w);
      write_field(b, pos + 16, 2, false, h);
    }
    if (len > b.size()) break;
    pos += 8 + len + (len & 1);
  }
}

const uint8_t kInteresting8[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE};
const uint32_t kInteresting32[] = {
    0,      1,      2,       0x7F,       0x80,       0xFF,       0x100,      0x7FFF,
    0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFEFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF};

// One mutation of `in`, chosen and placed by `rng`; `what` says which, for the failure message.
Bytes mutate(const Bytes& in, std::mt19937& rng, std::string& what) {
  Bytes b = in;
  auto pick = [&](size_t n) { return n ? size_t(rng() % n) : 0; };
  // Half the byte-level mutations land in the first 1 KB, where the headers are.
  auto where = [&]() {
    return rng() % 2 ? pick(std::min<size_t>(b.size(), 1024)) : pick(b.size());
  };
  std::vector<Field> fields = structure(b);
  switch (rng() % 8) {
    case 0: {
      int flips = 1 + int(rng() % 8);
      for (int i = 0; i < flips; ++i) b[where()] ^= uint8_t(1u << (rng() % 8));
      what = "flip " + std::to_string(flips) + " bits";
      break;
    }
    case 1: {
      int writes = 1 + int(rng() % 4);
      for (int i = 0; i < writes; ++i) b[where()] = kInteresting8[rng() % sizeof kInteresting8];
      what = "overwrite " + std::to_string(writes) + " bytes";
      break;
    }
    case 2: {
      size_t keep = pick(b.size());
      b.resize(keep);
      what = "truncate to " + std::to_string(keep);
      break;
    }
    case 3: {
      if (fields.empty()) return mutate(in, rng, what);
      const Field& f = fields[pick(fields.size())];
      uint32_t old = read_field(b, f.at, f.bytes, f.big_endian);
      uint32_t v = rng() % 2 ? kInteresting32[rng() % std::size(kInteresting32)]
                             : old + uint32_t(int(rng() % 17) - 8);
      write_field(b, f.at, f.bytes, f.big_endian, v);
      what = "length at " + std::to_string(f.at) + " = " + std::to_string(v);
      break;
    }
    case 4: {  // the declared size: huge, zero, negative (as signed), or a little off
      uint32_t w = 0, h = 0;
      switch (rng() % 4) {
        case 0:
          w = h = kInteresting32[rng() % std::size(kInteresting32)];
          break;
        case 1:
          w = kInteresting32[rng() % std::size(kInteresting32)], h = 1 + rng() % 64;
          break;
        case 2:
          w = 1 + rng() % 64, h = kInteresting32[rng() % std::size(kInteresting32)];
          break;
        default:
          w = 1 + rng() % 2048, h = 1 + rng() % 2048;
      }
      bool done = false;
      for (const Field& f : fields)
        if (!f.dims.empty()) {
          const int bytes = b[0] == 0xFF ? 2 : 4;
          write_field(b, f.dims[0], bytes, b[0] != 'B', w);
          write_field(b, f.dims[1], bytes, b[0] != 'B', h);
          done = true;
        }
      if (b.size() > 12 && b[0] == 'R') set_webp_size(b, w, h), done = true;
      if (!done) return mutate(in, rng, what);
      what = "size " + std::to_string(w) + " x " + std::to_string(h);
      break;
    }
    case 5: {  // a segment repeated
      if (fields.empty()) return mutate(in, rng, what);
      const Field& f = fields[pick(fields.size())];
      if (f.end <= f.begin || f.end - f.begin > 100'000) return mutate(in, rng, what);
      Bytes segment(b.begin() + f.begin, b.begin() + f.end);
      const bool many = rng() % 4 == 0;  // (two rng() in one expression: unspecified order)
      int copies = 1 + int(rng() % (many ? 60 : 3));
      for (int i = 0; i < copies; ++i) b.insert(b.begin() + f.end, segment.begin(), segment.end());
      what = "segment at " + std::to_string(f.begin) + " repeated " + std::to_string(copies);
      break;
    }
    case 6: {
      size_t at = where(), n = 1 + pick(64);
      Bytes noise = test::random_bytes(n, rng());
      b.insert(b.begin() + at, noise.begin(), noise.end());
      what = "insert " + std::to_string(n) + " at " + std::to_string(at);
      break;
    }
    default: {
      size_t at = where(), n = std::min(b.size() - at, 1 + pick(256));
      b.erase(b.begin() + at, b.begin() + at + n);
      what = "delete " + std::to_string(n) + " at " + std::to_string(at);
    }
  }
  return b;
}

struct Outcome {
  bool ok = false;
  int width = 0, height = 0;
};

// Runs `call`; Error is an outcome, anything else a test failure.
template <typename Call>
Outcome run(const char* which, const std::string& id, Call call) {
  Outcome out;
  try {
    std::tie(out.width, out.height) = call();
    out.ok = true;
    EXPECT_TRUE(vision_detail::image_size_ok(out.width, out.height))
        << id << ": " << which << " gave " << out.width << "x" << out.height;
  } catch (const Error&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << id << ": " << which << " threw a non-Error exception: " << e.what();
  } catch (...) {
    ADD_FAILURE() << id << ": " << which << " threw something other than an exception";
  }
  return out;
}

TEST(ImageFuzz, MutatedFilesDecodeOrFailCleanly) {
  install_crash_reporter();
  const std::vector<Seed> seeds = seed_files();
  ASSERT_GE(seeds.size(), 16u) << "fixture images missing";
  const char* only = std::getenv("QWENVL_FUZZ_CASE");  // "<file>:<case>"
  const char* count = std::getenv("QWENVL_FUZZ_CASES");
  const int cases_per_seed = count ? std::atoi(count) : kCasesPerSeed;
  const auto start = std::chrono::steady_clock::now();
  int cases = 0, decoded = 0;
  double slowest = 0;
  std::string slowest_id;
  for (const Seed& seed : seeds) {
    ASSERT_NO_THROW(decode_image(seed.bytes, seed.name)) << "seed " << seed.name;
    for (int k = 0; k < cases_per_seed; ++k) {
      const std::string id = seed.name + ":" + std::to_string(k);
      if (only && id != only) continue;
      // Each case's generator depends only on its seed file and number.
      std::seed_seq seq(seed.name.begin(), seed.name.end());
      std::vector<uint32_t> base(1);
      seq.generate(base.begin(), base.end());
      std::mt19937 rng(base[0] ^ (0x9E3779B9u * uint32_t(k + 1)));
      // Mostly one mutation; one case in four stacks a second, one in eight a third.
      std::string what;
      Bytes file = mutate(seed.bytes, rng, what);
      int more = rng() % 4 == 0;
      more += rng() % 8 == 0;
      for (; more > 0 && !file.empty(); --more) {
        std::string next;
        file = mutate(file, rng, next);
        what += ", then " + next;
      }
      const std::string label = id + " (" + what + ")";
      std::snprintf(g_current_case, sizeof g_current_case, "%s", label.c_str());
      if (only) std::fprintf(stderr, "case %s, %zu bytes\n", label.c_str(), file.size());

      const auto case_start = std::chrono::steady_clock::now();
      Outcome probed = run("probe_image", label, [&] {
        ImageHeader h = probe_image(file, "fuzz");
        return std::pair(h.width, h.height);
      });
      Outcome decoded_image = run("decode_image", label, [&] {
        RgbImage image = decode_image(file, "fuzz");
        EXPECT_EQ(image.pixels.size(), size_t(image.width) * image.height * 3) << label;
        return std::pair(image.width, image.height);
      });
      if (std::getenv("QWENVL_FUZZ_LOG"))
        std::fprintf(stderr, "%s: probe %d %dx%d, decode %d %dx%d\n", label.c_str(), probed.ok,
                     probed.width, probed.height, decoded_image.ok, decoded_image.width,
                     decoded_image.height);
      if (decoded_image.ok) {
        ++decoded;
        EXPECT_TRUE(probed.ok) << label << ": decodes but probe_image refuses it";
        if (probed.ok) {
          EXPECT_EQ(probed.width, decoded_image.width) << label;
          EXPECT_EQ(probed.height, decoded_image.height) << label;
        }
      }
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - case_start).count();
      EXPECT_LT(seconds, kMaxCaseSeconds) << label << " is too slow";
      if (seconds > slowest) slowest = seconds, slowest_id = label;
      ++cases;
    }
  }
  std::snprintf(g_current_case, sizeof g_current_case, "none");
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d cases over %zu seed files, %d decoded, %.1f s; slowest %.3f s: %s\n", cases,
              seeds.size(), decoded, total, slowest, slowest_id.c_str());
  if (!only) {
    EXPECT_GT(decoded, cases / 10) << "mutations too destructive to reach the pixel decoders";
    EXPECT_LT(decoded, cases * 9 / 10) << "mutations too gentle";
  }
}

}  // namespace
}  // namespace qwenvl
