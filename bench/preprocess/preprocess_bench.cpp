// Decode + preprocess time for a 12-megapixel JPEG (or the image given as argument):
//   preprocess_bench [IMAGE] [--runs N] [--max-pixels N]
// Without IMAGE it encodes a 4000x3000 q90 JPEG of a smooth colour field plus noise (what a
// phone photo compresses like). Prints the median over the runs of each stage, wall time and
// the process CPU time (the two differ when other work shares the cores).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>
// jpeglib.h needs size_t and FILE declared first.
#include <jpeglib.h>

#include "core/error.h"
#include "core/thread_pool.h"
#include "vision/image.h"
#include "vision/preprocess.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<uint8_t> synthetic_jpeg(int width, int height) {
  std::vector<uint8_t> rgb(size_t(width) * height * 3);
  std::mt19937 rng(12);
  std::normal_distribution<float> noise(0.0f, 10.0f);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      float fx = float(x) / width, fy = float(y) / height;
      float field[3] = {128 + 100 * std::sin(7 * fx + 3 * fy),
                        128 + 90 * std::cos(5 * fx * fy + 2 * fy), 255 * (0.5f * fx + 0.5f * fy)};
      for (int c = 0; c < 3; ++c)
        rgb[(size_t(y) * width + x) * 3 + c] =
            uint8_t(std::clamp(field[c] + noise(rng), 0.0f, 255.0f));
    }
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = width, cinfo.image_height = height;
  cinfo.input_components = 3, cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 90, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = &rgb[size_t(cinfo.next_scanline) * width * 3];
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

double cpu_ms() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

struct Stage {
  const char* name;
  std::vector<double> wall, cpu;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const char* path = nullptr;
    int runs = 7;
    qwenvl::PreprocessConfig config;
    config.max_pixels = 12845056;  // Qwen2.5-VL's preprocessor_config.json
    for (int i = 1; i < argc; ++i) {
      if (!std::strcmp(argv[i], "--runs") && i + 1 < argc)
        runs = std::atoi(argv[++i]);
      else if (!std::strcmp(argv[i], "--max-pixels") && i + 1 < argc)
        config.max_pixels = std::atoll(argv[++i]);
      else
        path = argv[i];
    }
    std::vector<uint8_t> bytes = path ? qwenvl::read_image_file(path) : synthetic_jpeg(4000, 3000);
    std::printf("input: %s, %.1f MB, %d threads, %d runs\n",
                path ? path : "synthetic 4000x3000 q90 JPEG", bytes.size() / 1e6,
                qwenvl::ThreadPool::global().size(), runs);

    Stage decode{"decode", {}, {}}, resize{"resize", {}, {}}, patchify{"patchify", {}, {}},
        total{"total", {}, {}};
    int width = 0, height = 0, out_w = 0, out_h = 0;
    int64_t patches = 0;
    for (int r = 0; r < runs; ++r) {
      auto t0 = Clock::now();
      double c0 = cpu_ms();
      qwenvl::RgbImage image = qwenvl::decode_image(bytes, "bench");
      auto t1 = Clock::now();
      double c1 = cpu_ms();
      auto [h, w] =
          qwenvl::smart_resize(image.height, image.width, 28, config.min_pixels, config.max_pixels);
      qwenvl::RgbImage resized = qwenvl::resize_bicubic(image, w, h);
      auto t2 = Clock::now();
      double c2 = cpu_ms();
      qwenvl::ImagePatches out = qwenvl::patchify_image(resized, config);
      auto t3 = Clock::now();
      double c3 = cpu_ms();
      auto ms = [](auto a, auto b) {
        return std::chrono::duration<double, std::milli>(b - a).count();
      };
      decode.wall.push_back(ms(t0, t1)), decode.cpu.push_back(c1 - c0);
      resize.wall.push_back(ms(t1, t2)), resize.cpu.push_back(c2 - c1);
      patchify.wall.push_back(ms(t2, t3)), patchify.cpu.push_back(c3 - c2);
      total.wall.push_back(ms(t0, t3)), total.cpu.push_back(c3 - c0);
      width = image.width, height = image.height, out_w = w, out_h = h;
      patches = out.pixel_values.dim(0);
    }
    std::printf("image %dx%d -> %dx%d, %lld patches (%.0f MB of float32)\n", width, height, out_w,
                out_h, static_cast<long long>(patches), patches * 1176 * 4 / 1e6);
    std::printf("%-9s %12s %12s\n", "stage", "wall ms", "cpu ms");
    for (const Stage* s : {&decode, &resize, &patchify, &total})
      std::printf("%-9s %12.1f %12.1f\n", s->name, median(s->wall), median(s->cpu));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "preprocess_bench: %s\n", e.what());
    return 1;
  }
}
