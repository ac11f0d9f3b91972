// Video files: probing, decoding only the sampled frames, rotation, broken files, and the resize
// and patch layout that follow. The videos are tests/fixtures/videos (make_videos.sh).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "core/error.h"
#include "vision/video.h"

namespace qwenvl {
namespace {

std::string video(const std::string& name) {
  return std::string(QWENVL_FIXTURES_DIR) + "/videos/" + name;
}

std::vector<RgbImage> decode(const std::string& path, const std::vector<int64_t>& indices) {
  const VideoInfo info = probe_video(path);
  std::vector<RgbImage> frames;
  decode_video_frames(path, info, indices, [&](int64_t k, const RgbImage& frame) {
    EXPECT_EQ(k, int64_t(frames.size()));
    frames.push_back(frame);
  });
  return frames;
}

std::vector<int64_t> all_frames(int64_t count) {
  std::vector<int64_t> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[size_t(i)] = i;
  return v;
}

bool same(const RgbImage& a, const RgbImage& b) {
  return a.width == b.width && a.height == b.height && a.pixels == b.pixels;
}

TEST(VideoProbe, ReadsSizeRateAndEveryFrameTime) {
  const VideoInfo info = probe_video(video("h264_64x48_10fps.mp4"));
  EXPECT_EQ(info.width, 64);
  EXPECT_EQ(info.height, 48);
  EXPECT_EQ(info.rotation, 0);
  EXPECT_DOUBLE_EQ(info.fps, 10.0);
  ASSERT_EQ(info.frame_count, 20);
  for (int i = 0; i < 20; ++i) EXPECT_NEAR(info.frame_seconds[size_t(i)], i / 10.0, 1e-9);
  EXPECT_EQ(info.keyframe_pts.size(), 4u);  // a keyframe every 5 frames

  const VideoInfo vfr = probe_video(video("vfr_64x48.mkv"));
  ASSERT_GE(vfr.frame_count, 5);
  EXPECT_NEAR(vfr.frame_seconds[3], 0.4, 1e-9);  // frame times 0, 0.1, 0.2, 0.4, 0.8, ...
  EXPECT_NEAR(vfr.frame_seconds[4], 0.8, 1e-9);

  const VideoInfo odd = probe_video(video("vp9_91x53_12fps.webm"));
  EXPECT_EQ(odd.width, 91);
  EXPECT_EQ(odd.height, 53);
  EXPECT_EQ(odd.frame_count, 12);
  const VideoInfo mjpeg = probe_video(video("mjpeg_81x61_8fps.avi"));
  EXPECT_EQ(mjpeg.width, 81);
  EXPECT_EQ(mjpeg.frame_count, 8);
}

TEST(VideoDecode, SampledFramesEqualTheSameFramesOfAFullDecode) {
  for (const char* name : {"h264_64x48_10fps.mp4", "h264_bframes_64x48_10fps.mp4",
                           "vp9_91x53_12fps.webm", "mjpeg_81x61_8fps.avi", "vfr_64x48.mkv"}) {
    SCOPED_TRACE(name);
    const VideoInfo info = probe_video(video(name));
    const std::vector<RgbImage> all = decode(video(name), all_frames(info.frame_count));
    ASSERT_EQ(int64_t(all.size()), info.frame_count);
    // frames far apart (seeks), neighbours (decoding forward) and the last frame
    const std::vector<int64_t> picks = {1, 2, 5, info.frame_count - 1};
    const std::vector<RgbImage> sampled = decode(video(name), picks);
    ASSERT_EQ(sampled.size(), picks.size());
    for (size_t k = 0; k < picks.size(); ++k)
      EXPECT_TRUE(same(sampled[k], all[size_t(picks[k])])) << "frame " << picks[k];
    // frames differ from one another (the source is moving), so a wrong frame would show
    EXPECT_FALSE(same(all[1], all[5]));
  }
}

TEST(VideoDecode, PixelsAreTheSourcesColours) {
  // testsrc2's frames: an h264 and an mjpeg encoding of the same picture are close, not equal
  const std::vector<RgbImage> h264 = decode(video("h264_64x48_10fps.mp4"), {0});
  const std::vector<RgbImage> bframes = decode(video("h264_bframes_64x48_10fps.mp4"), {0});
  ASSERT_EQ(h264.size(), 1u);
  double diff = 0;
  for (size_t i = 0; i < h264[0].pixels.size(); ++i)
    diff += std::abs(int(h264[0].pixels[i]) - int(bframes[0].pixels[i]));
  EXPECT_LT(diff / double(h264[0].pixels.size()), 8.0);
}

TEST(VideoDecode, RotationMetadataTurnsFramesUpright) {
  const VideoInfo info = probe_video(video("h264_rotate90.mp4"));
  EXPECT_EQ(info.rotation, 270);  // FFmpeg's autorotate: 90 degrees counter-clockwise
  EXPECT_EQ(info.width, 48);
  EXPECT_EQ(info.height, 64);
  const std::vector<RgbImage> rotated = decode(video("h264_rotate90.mp4"), {0, 9});
  const std::vector<RgbImage> plain = decode(video("h264_64x48_10fps.mp4"), {0, 9});
  for (size_t k = 0; k < 2; ++k) EXPECT_TRUE(same(rotated[k], apply_orientation(plain[k], 8)));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    return e.what();
  }
  return "";
}

TEST(VideoDecode, BrokenInputsGiveOneClearError) {
  EXPECT_NE(error_of([] { probe_video(video("text.mp4")); }).find("is not an MP4"),
            std::string::npos);
  EXPECT_NE(error_of([] { probe_video(video("audio_only.mp4")); }).find("no video stream"),
            std::string::npos);
  EXPECT_NE(error_of([] { probe_video(video("missing.mp4")); }).find("cannot open"),
            std::string::npos);
  EXPECT_NE(error_of([] { probe_video(QWENVL_FIXTURES_DIR); }).find("regular file"),
            std::string::npos);
  // truncated: the index is cut, or frames are missing; either way an Error, never a crash
  EXPECT_FALSE(error_of([] {
                 const VideoInfo info = probe_video(video("truncated.mp4"));
                 decode(video("truncated.mp4"), all_frames(info.frame_count));
               }).empty());
  // corrupt payload: decoders conceal damage, so it may decode; it must not crash or hang
  try {
    const VideoInfo info = probe_video(video("corrupt.mp4"));
    decode(video("corrupt.mp4"), all_frames(info.frame_count));
  } catch (const Error&) {
  }
  // one frame: qwen-vl-utils needs at least FRAME_FACTOR frames
  const std::string one =
      error_of([] { preprocess_video(video("one_frame.mp4"), {}, PreprocessConfig{}); });
  EXPECT_NE(one.find("cannot give"), std::string::npos) << one;
}

// Cut and damaged copies of each test video: every one decodes or gives an Error, never a crash
// or a hang (the sanitizer build runs this too).
TEST(VideoDecode, DamagedCopiesDecodeOrFail) {
  const std::string scratch =
      (std::filesystem::temp_directory_path() / ("qwenvl_damaged_" + std::to_string(getpid())))
          .string();
  std::mt19937 rng(std::random_device{}());
  for (const char* name : {"h264_bframes_64x48_10fps.mp4", "vp9_91x53_12fps.webm",
                           "mjpeg_81x61_8fps.avi", "vfr_64x48.mkv"}) {
    std::ifstream in(video(name), std::ios::binary);
    const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
    for (int trial = 0; trial < 12; ++trial) {
      std::vector<char> copy = bytes;
      if (trial % 2 == 0) {
        copy.resize(size_t(rng() % bytes.size()));
      } else {
        for (int flips = 0; flips < 1 + trial; ++flips) copy[rng() % copy.size()] ^= char(rng());
      }
      std::ofstream(scratch, std::ios::binary).write(copy.data(), std::streamsize(copy.size()));
      SCOPED_TRACE(testing::Message() << name << " trial " << trial << " size " << copy.size());
      try {
        preprocess_video(scratch, {}, PreprocessConfig{});
      } catch (const Error&) {
      }
    }
  }
  std::filesystem::remove(scratch);
}

TEST(VideoDecode, FifoIsRefusedWithoutBlocking) {
  const std::string fifo =
      (std::filesystem::temp_directory_path() / ("qwenvl_fifo_" + std::to_string(getpid())))
          .string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { probe_video(fifo); }).find("regular file"), std::string::npos);
  std::filesystem::remove(fifo);
}

TEST(VideoPreprocess, FileGivesGridTimesAndPatches) {
  const VideoPatches v = preprocess_video(video("h264_64x48_10fps.mp4"), {}, PreprocessConfig{});
  // 2 s at 2 fps -> 4 frames (FPS_MIN_FRAMES), 64x48 scaled up to VIDEO_MIN_PIXELS: 392x280
  EXPECT_EQ(v.sampling.indices, (std::vector<int64_t>{0, 6, 13, 19}));
  EXPECT_EQ(v.patches.grid_t, 2);
  EXPECT_EQ(v.patches.grid_h, 20);
  EXPECT_EQ(v.patches.grid_w, 28);
  EXPECT_EQ(v.patches.pixel_values.dim(0), 2 * 20 * 28);
  EXPECT_EQ(v.patches.pixel_values.dim(1), 1176);
  ASSERT_EQ(v.frame_seconds.size(), 4u);
  EXPECT_NEAR(v.frame_seconds[2], 1.3, 1e-9);
  EXPECT_DOUBLE_EQ(v.sampling.sample_fps, 2.0);

  // Row 0 of temporal patch 1 holds frame 2 in slot 0 and frame 3 in slot 1: the top-left patch
  // of each frame, resized, normalised as the video processor does.
  const std::vector<RgbImage> frames = decode(video("h264_64x48_10fps.mp4"), {13, 19});
  const PreprocessConfig config;
  const float* values = static_cast<const float*>(v.patches.pixel_values.data());
  const int64_t row = 20 * 28;  // first row of temporal patch 1
  for (int slot = 0; slot < 2; ++slot) {
    const RgbImage resized = resize_bicubic_antialias(frames[size_t(slot)], 392, 280);
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 14; ++y)
        for (int x = 0; x < 14; ++x) {
          const float mean = config.image_mean[c] * 255.0f, std = config.image_std[c] * 255.0f;
          const float expected =
              (float(resized.pixels[size_t((y * 392 + x) * 3 + c)]) - mean) / std;
          ASSERT_EQ(values[row * 1176 + (c * 2 + slot) * 196 + y * 14 + x], expected);
        }
  }
}

TEST(VideoPreprocess, DirectoryOfFramesPadsAnOddCount) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("qwenvl_frames_" + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(dir);
  const std::string images = std::string(QWENVL_FIXTURES_DIR) + "/images/";
  // three frames of one size, named out of order on purpose
  std::filesystem::copy_file(images + "identity_280x224.png", dir + "/b.png");
  std::filesystem::copy_file(images + "identity_280x224.png", dir + "/a.png");
  std::filesystem::copy_file(images + "identity_280x224.png", dir + "/c.png");
  std::filesystem::copy_file(images + "chelsea.jpg", dir + "/notes.txt");  // ignored
  const VideoPatches v = preprocess_video(dir, {}, PreprocessConfig{});
  EXPECT_EQ(v.sampling.indices, (std::vector<int64_t>{0, 1, 2, 2}));
  EXPECT_EQ(v.patches.grid_t, 2);
  EXPECT_EQ(v.patches.grid_h, 224 / 14);
  EXPECT_EQ(v.patches.grid_w, 280 / 14);
  // the padded slot repeats the last frame
  const float* values = static_cast<const float*>(v.patches.pixel_values.data());
  const int64_t rows = v.patches.grid_h * v.patches.grid_w;
  for (int64_t r = rows; r < 2 * rows; ++r)
    for (int c = 0; c < 3; ++c)
      ASSERT_EQ(std::memcmp(values + r * 1176 + (c * 2 + 1) * 196,
                            values + r * 1176 + (c * 2) * 196, 196 * sizeof(float)),
                0);
  std::filesystem::remove_all(dir);
  EXPECT_THROW(list_frame_files(dir), Error);
}

struct ResizeCase {
  int w, h, out_w, out_h;
  std::vector<int> in, expected;
};

TEST(ResizeBicubicAntialias, MatchesTorchsFloat32Algorithm) {
  // Expected: torch's separable antialiased bicubic written out in Python with float32 rounding
  // after every operation (the same steps as ATen's UpSampleKernel.cpp), on random pixels.
  const std::vector<ResizeCase> cases = {
      {7,
       5,
       3,
       4,
       {165, 77,  202, 24,  37,  48,  187, 29,  109, 19,  44,  222, 214, 35,  123, 46,  217, 30,
        63,  114, 31,  203, 25,  113, 23,  68,  148, 214, 73,  60,  157, 92,  52,  96,  190, 49,
        32,  30,  105, 254, 218, 160, 238, 232, 185, 153, 127, 92,  124, 41,  153, 253, 175, 229,
        147, 37,  60,  214, 84,  175, 77,  250, 215, 20,  39,  160, 174, 179, 254, 233, 35,  47,
        138, 242, 33,  31,  158, 228, 145, 197, 177, 11,  236, 181, 86,  59,  252, 30,  111, 147,
        66,  126, 203, 200, 254, 41,  85,  229, 205, 142, 70,  220, 142, 212, 183},
       {109, 44,  117, 117, 55,  130, 90, 143, 58,  153, 92, 126, 162, 99,  94,  141, 132, 136,
        156, 123, 163, 164, 132, 125, 98, 184, 186, 69,  89, 195, 127, 200, 124, 116, 170, 203}},
      {5,
       7,
       9,
       11,
       {194, 118, 77,  42,  90,  77,  118, 119, 6,   248, 93,  134, 144, 2,   74,  214, 189, 163,
        64,  27,  233, 200, 203, 204, 201, 53,  246, 205, 31,  97,  34,  106, 225, 83,  56,  174,
        26,  52,  0,   77,  51,  186, 13,  36,  106, 192, 76,  129, 177, 186, 242, 62,  59,  249,
        238, 245, 247, 159, 43,  73,  52,  175, 135, 245, 82,  11,  105, 185, 75,  13,  152, 46,
        133, 187, 85,  182, 114, 168, 114, 99,  122, 205, 116, 102, 252, 182, 14,  14,  143, 241,
        132, 99,  176, 228, 178, 186, 41,  112, 52,  116, 240, 100, 172, 104, 247},
       {205, 115, 71,  148, 107, 72,  49,  95,  70,  53,  102, 26,  112, 113, 0,   203, 111, 68,
        249, 88,  128, 175, 26,  92,  131, 0,   68,  225, 159, 107, 163, 124, 121, 58,  65,  144,
        83,  104, 123, 161, 162, 99,  213, 123, 152, 234, 68,  180, 197, 28,  114, 175, 9,   75,
        215, 200, 165, 161, 137, 189, 71,  31,  232, 111, 97,  221, 193, 198, 199, 199, 125, 234,
        192, 43,  237, 195, 32,  141, 196, 31,  86,  63,  136, 223, 67,  102, 216, 72,  43,  196,
        68,  56,  110, 65,  88,  34,  83,  61,  125, 90,  34,  198, 61,  34,  138, 44,  35,  100,
        76,  84,  197, 91,  94,  203, 114, 107, 207, 71,  73,  140, 23,  38,  75,  85,  86,  153,
        129, 116, 207, 75,  59,  132, 42,  26,  86,  193, 67,  120, 192, 111, 160, 183, 183, 233,
        117, 129, 253, 62,  59,  249, 161, 172, 255, 240, 237, 233, 187, 105, 121, 153, 27,  59,
        84,  147, 130, 140, 138, 112, 232, 121, 83,  181, 129, 106, 85,  149, 141, 67,  176, 134,
        83,  187, 113, 134, 157, 81,  163, 139, 64,  61,  176, 153, 115, 140, 106, 209, 79,  25,
        196, 115, 34,  135, 178, 70,  82,  166, 39,  55,  152, 28,  85,  177, 92,  103, 192, 129,
        181, 120, 170, 157, 111, 151, 118, 95,  117, 149, 101, 109, 206, 121, 102, 247, 157, 35,
        227, 178, 25,  79,  158, 168, 0,   145, 250, 158, 98,  175, 166, 115, 175, 175, 144, 170,
        145, 128, 126, 114, 110, 74,  157, 176, 50,  182, 214, 77,  126, 149, 200, 93,  110, 255,
        120, 91,  175, 165, 124, 185, 237, 180, 196, 150, 151, 127, 29,  112, 48,  57,  193, 64,
        116, 239, 120, 165, 145, 210, 189, 90,  255}},
      {13,
       9,
       6,
       9,
       {0,   245, 176, 43,  61,  198, 102, 244, 91,  222, 170, 44,  202, 237, 205, 43,  81,  87,
        65,  14,  77,  238, 74,  242, 179, 79,  67,  10,  7,   52,  71,  222, 99,  108, 14,  128,
        108, 149, 123, 166, 132, 214, 67,  31,  181, 234, 215, 66,  77,  9,   225, 93,  2,   76,
        88,  72,  242, 61,  31,  166, 247, 54,  29,  127, 97,  141, 21,  50,  231, 14,  32,  226,
        166, 102, 141, 231, 244, 126, 132, 103, 229, 70,  213, 62,  200, 226, 161, 37,  123, 219,
        37,  108, 155, 62,  79,  187, 73,  129, 70,  239, 112, 48,  203, 249, 83,  114, 82,  220,
        206, 173, 215, 100, 182, 163, 47,  187, 9,   173, 234, 225, 9,   196, 169, 151, 32,  57,
        117, 53,  43,  135, 139, 20,  92,  138, 66,  216, 132, 207, 76,  253, 167, 45,  142, 29,
        93,  217, 37,  137, 8,   45,  133, 42,  113, 34,  135, 62,  232, 5,   173, 213, 137, 66,
        22,  122, 56,  82,  134, 25,  92,  103, 159, 156, 105, 148, 228, 91,  138, 177, 9,   128,
        18,  7,   9,   97,  243, 125, 228, 54,  221, 253, 201, 157, 110, 117, 175, 101, 71,  207,
        177, 27,  66,  7,   36,  130, 220, 83,  28,  43,  195, 144, 124, 150, 23,  235, 94,  80,
        137, 228, 1,   134, 186, 168, 165, 125, 17,  158, 111, 182, 93,  0,   171, 195, 42,  243,
        142, 102, 127, 2,   46,  135, 45,  73,  204, 21,  201, 11,  153, 155, 119, 43,  79,  199,
        166, 253, 76,  145, 74,  22,  219, 71,  8,   117, 43,  15,  21,  68,  184, 53,  192, 231,
        25,  9,   125, 250, 135, 1,   233, 35,  47,  33,  242, 129, 38,  135, 120, 105, 118, 235,
        252, 195, 39,  245, 147, 23,  101, 39,  75,  169, 130, 155, 68,  6,   246, 31,  248, 137,
        50,  111, 250, 148, 146, 237, 238, 238, 60,  102, 159, 43,  242, 8,   148, 234, 39,  230,
        137, 198, 107, 107, 38,  46,  72,  134, 184, 67,  143, 57,  186, 118, 254, 248, 201, 12,
        81,  1,   251, 230, 207, 154, 72,  213, 176},
       {27,  163, 173, 176, 204, 99,  100, 110, 121, 172, 47,  144, 67,  92,  72,  102, 105, 124,
        137, 107, 177, 132, 76,  138, 78,  32,  178, 166, 64,  99,  41,  51,  211, 171, 151, 147,
        120, 174, 143, 92,  163, 178, 49,  91,  152, 187, 155, 62,  166, 151, 198, 93,  183, 108,
        97,  188, 180, 120, 65,  41,  138, 138, 90,  99,  199, 139, 100, 121, 37,  95,  69,  84,
        194, 80,  108, 63,  129, 58,  161, 103, 152, 139, 33,  90,  133, 136, 135, 198, 144, 180,
        118, 41,  135, 110, 85,  83,  135, 151, 66,  165, 183, 62,  148, 126, 108, 144, 29,  207,
        64,  68,  147, 47,  138, 102, 103, 153, 140, 176, 115, 23,  102, 63,  83,  30,  100, 189,
        213, 109, 35,  50,  161, 149, 206, 157, 91,  162, 85,  84,  67,  115, 198, 84,  151, 227,
        180, 168, 63,  213, 61,  171, 104, 110, 98,  108, 137, 139, 188, 117, 145, 139, 176, 181}},
  };
  for (const ResizeCase& c : cases) {
    RgbImage image;
    image.width = c.w;
    image.height = c.h;
    image.pixels.assign(c.in.begin(), c.in.end());
    const RgbImage out = resize_bicubic_antialias(image, c.out_w, c.out_h);
    ASSERT_EQ(out.pixels.size(), c.expected.size());
    EXPECT_EQ(std::vector<int>(out.pixels.begin(), out.pixels.end()), c.expected)
        << c.w << "x" << c.h << " -> " << c.out_w << "x" << c.out_h;
  }
}

TEST(ResizeBicubicAntialias, SameSizeIsUnchangedAndFlatStaysFlat) {
  RgbImage flat;
  flat.width = 50;
  flat.height = 30;
  flat.pixels.assign(50 * 30 * 3, 77);
  EXPECT_EQ(resize_bicubic_antialias(flat, 50, 30).pixels, flat.pixels);
  const RgbImage down = resize_bicubic_antialias(flat, 17, 11);
  for (uint8_t v : down.pixels) ASSERT_EQ(v, 77);
  const RgbImage up = resize_bicubic_antialias(flat, 111, 73);
  for (uint8_t v : up.pixels) ASSERT_EQ(v, 77);
}

}  // namespace
}  // namespace qwenvl
