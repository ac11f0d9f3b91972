// `qwenvl generate --video` end to end on the tiny fixture model (CPU): the prompt's video pads,
// the --json report (video_grid_thw, sampled frames and their times), determinism, the video's
// tokens in --max-image-tokens, and one-line errors for bad flags and bad files.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "generate_run.h"

namespace {

namespace fs = std::filesystem;
using namespace qwenvl::cli_test;

const fs::path kTiny = fs::path(QWENVL_FIXTURES_DIR) / "models" / "tiny-tied";
const std::string kVideo = std::string(QWENVL_FIXTURES_DIR) + "/videos/h264_64x48_10fps.mp4";
const std::string kImage = std::string(QWENVL_FIXTURES_DIR) + "/images/tiny_27x27.png";

std::vector<std::string> base(std::vector<std::string> more) {
  std::vector<std::string> args = {
      "--model", kTiny.string(),  "--prompt", "What moves?", "--max-new-tokens", "3", "--device",
      "cpu",     "--temperature", "0",        "--json"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TEST(GenerateVideoCli, ImageThenVideoReportedInJson) {
  if (!fs::exists(kTiny / "config.json")) GTEST_SKIP() << "tiny fixture model missing";
  const RunResult r = run_generate(base({"--image", kImage, "--video", kVideo}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = last_json_line(r.out);
  // 2 s at 10 fps, 2 fps sampled: frames 0, 6, 13, 19 -> 2 temporal patches of 392x280
  EXPECT_EQ(j["video_grid_thw"], nlohmann::json::parse("[[2, 20, 28]]"));
  const nlohmann::json& v = j["videos"][0];
  EXPECT_EQ(v["frames"], nlohmann::json::parse("[0, 6, 13, 19]"));
  EXPECT_NEAR(v["frame_seconds"][2].get<double>(), 1.3, 1e-9);
  EXPECT_DOUBLE_EQ(v["sample_fps"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(v["second_per_grid"].get<double>(), 1.0);
  EXPECT_GE(v["decode_ms"].get<double>(), 0.0);
  // the image's pads come first, then the video's 2 * 20 * 28 / 4 = 280
  const std::vector<int> ids = j["prompt_token_ids"].get<std::vector<int>>();
  int image_pads = 0, video_pads = 0;
  size_t last_image = 0, first_video = ids.size();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == 151655) image_pads++, last_image = i;
    if (ids[i] == 151656) video_pads++, first_video = std::min(first_video, i);
  }
  EXPECT_EQ(video_pads, 280);
  EXPECT_EQ(image_pads, 4);  // 27x27 -> 56x56 (min_pixels) -> 2x2 merged tokens
  EXPECT_LT(last_image, first_video);
  // greedy decoding is deterministic
  const RunResult again = run_generate(base({"--image", kImage, "--video", kVideo}));
  EXPECT_EQ(last_json_line(again.out)["tokens"], j["tokens"]);
}

TEST(GenerateVideoCli, SamplingFlagsApply) {
  if (!fs::exists(kTiny / "config.json")) GTEST_SKIP() << "tiny fixture model missing";
  const RunResult r =
      run_generate(base({"--video", kVideo, "--nframes", "6", "--video-start", "0.5", "--video-end",
                         "1.5", "--video-max-pixels", "50176"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json v = last_json_line(r.out)["videos"][0];
  // frames 5..15 (11 frames), 6 of them: linspace(5, 15, 6).round() = 5, 7, 9, 11, 13, 15
  EXPECT_EQ(v["frames"], nlohmann::json::parse("[5, 7, 9, 11, 13, 15]"));
  // max_pixels lowered to 50176, but min_pixels * 1.05 wins: int(100352 * 1.05) = 105369
  EXPECT_EQ(v["grid_thw"], nlohmann::json::parse("[3, 20, 28]"));
}

TEST(GenerateVideoCli, VideoTokensCountInTheImageTokenBudget) {
  if (!fs::exists(kTiny / "config.json")) GTEST_SKIP() << "tiny fixture model missing";
  const std::string image = std::string(QWENVL_FIXTURES_DIR) + "/images/odd_333x517.jpg";
  // Alone the image takes 216 tokens (336x504) and the video 280, its frames already at its
  // min_pixels: under 380 tokens only the image can give way.
  const RunResult r =
      run_generate(base({"--image", image, "--video", kVideo, "--max-image-tokens", "380"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("image " + image + " downscaled"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("video "), std::string::npos) << r.err;
  const nlohmann::json j = last_json_line(r.out);
  EXPECT_EQ(j["video_grid_thw"], nlohmann::json::parse("[[2, 20, 28]]"));
  const nlohmann::json& g = j["image_grid_thw"][0];
  const int64_t image_tokens = g[0].get<int64_t>() * g[1].get<int64_t>() * g[2].get<int64_t>() / 4;
  EXPECT_LE(image_tokens, 100);
  EXPECT_GT(image_tokens, 60);
  // Below what the video needs at its min_pixels: one line saying what to change.
  expect_one_line_error(run_generate(base({"--video", kVideo, "--max-image-tokens", "279"})),
                        "--max-image-tokens", 1);
}

TEST(GenerateVideoCli, BadFlagsAndFilesAreOneLineErrors) {
  if (!fs::exists(kTiny / "config.json")) GTEST_SKIP() << "tiny fixture model missing";
  expect_one_line_error(run_generate(base({"--video", kVideo, "--fps", "0"})), "--fps", 1);
  expect_one_line_error(run_generate(base({"--video", kVideo, "--fps", "1", "--nframes", "4"})),
                        "not both", 1);
  expect_one_line_error(run_generate(base({"--video", kVideo, "--nframes", "100000"})), "--nframes",
                        1);
  expect_one_line_error(run_generate(base({"--video", kVideo, "--video-start", "5"})), "range", 1);
  const std::string text = std::string(QWENVL_FIXTURES_DIR) + "/videos/text.mp4";
  expect_one_line_error(run_generate(base({"--video", text})), "text.mp4", 1);
  expect_one_line_error(run_generate(base({"--video", kVideo, "--max-context", "200"})), "context",
                        1);
}

}  // namespace
