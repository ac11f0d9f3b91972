// `--quantize fp8` through the real binary: generate runs the tiny fixture with FP8 projections,
// inspect and plan size them, and an AWQ checkpoint or an unknown value is one line on stderr.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "checkpoint/awq_checkpoint.h"
#include "checkpoint/test_checkpoints.h"
#include "cli/bounded_run.h"

namespace qwenvl {
namespace {

struct CommandResult {
  int exit_code;
  std::string out, err;
};

// `args` split at spaces (no quoting needed by these tests).
CommandResult run_qwenvl(const std::string& args) {
  std::vector<std::string> argv;
  std::istringstream words(args);
  for (std::string w; words >> w;) argv.push_back(w);
  const test::BoundedRun r = test::run_bounded(argv, 120);
  return {r.exit_code, r.out, r.err};
}

size_t count_lines(const std::string& s) {
  size_t lines = 0;
  for (char c : s) lines += c == '\n';
  return lines;
}

const std::string kTiny = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";

TEST(QuantizeFp8Cli, GenerateRunsTheTinyModelWithFp8Projections) {
  const std::string flags =
      "generate --device cpu --max-new-tokens 4 --json --temperature 0 --ignore-eos --prompt Hi "
      "--model " +
      kTiny;
  const CommandResult fp8 = run_qwenvl(flags + " --quantize fp8");
  ASSERT_EQ(fp8.exit_code, 0) << fp8.err;
  std::string last = fp8.out;  // the JSON summary is the last line
  while (!last.empty() && last.back() == '\n') last.pop_back();
  last = last.substr(last.rfind('\n') + 1);
  const auto j = nlohmann::json::parse(last);
  EXPECT_EQ(j["tokens"].size(), 4u) << last;
}

TEST(QuantizeFp8Cli, InspectAndPlanCountFp8Weights) {
  const CommandResult bf16 = run_qwenvl("inspect --json --model " + kTiny);
  const CommandResult fp8 = run_qwenvl("inspect --json --quantize fp8 --model " + kTiny);
  ASSERT_EQ(bf16.exit_code, 0) << bf16.err;
  ASSERT_EQ(fp8.exit_code, 0) << fp8.err;
  const auto j = nlohmann::json::parse(fp8.out);
  EXPECT_EQ(j["quantization"]["method"], "fp8");
  const int64_t loaded = j["quantization"]["loaded_weight_bytes"].get<int64_t>();
  EXPECT_GT(loaded, 0);
  EXPECT_LT(loaded, j["bf16_weight_bytes"].get<int64_t>());
  const CommandResult text = run_qwenvl("inspect --quantize fp8 --model " + kTiny);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("FP8 E4M3 projections"), std::string::npos) << text.out;

  // plan: a decoder layer's weights shrink, the vision tower's do not.
  test::TempDir dir;
  std::filesystem::copy_file(std::string(QWENVL_FIXTURES_DIR) + "/configs/7B.json",
                             dir.file("config.json"));
  const std::string plan = "plan --json --max-memory cuda:0=80GiB --model " + dir.path();
  const CommandResult p16 = run_qwenvl(plan), p8 = run_qwenvl(plan + " --quantize fp8");
  ASSERT_EQ(p16.exit_code, 0) << p16.err;
  ASSERT_EQ(p8.exit_code, 0) << p8.err;
  EXPECT_EQ(nlohmann::json::parse(p8.out)["quantize"], "fp8");
  const auto m16 = nlohmann::json::parse(p16.out)["modules"],
             m8 = nlohmann::json::parse(p8.out)["modules"];
  ASSERT_EQ(m16[2]["name"], "model.layers.0");
  const auto bytes = [](const nlohmann::json& m) { return m["weight_bytes"].get<int64_t>(); };
  EXPECT_LT(bytes(m8[2]), bytes(m16[2]) * 6 / 10);
  EXPECT_GT(bytes(m8[2]), bytes(m16[2]) * 4 / 10);
  EXPECT_EQ(bytes(m8[0]), bytes(m16[0]));  // visual
}

TEST(QuantizeFp8Cli, AwqCheckpointsAndUnknownValuesAreOneLine) {
  test::TempDir dir;
  write_awq_checkpoint(kTiny, 32, {dir.file("awq"), ""});
  for (const std::string& command :
       {"generate --device cpu --prompt Hi --quantize fp8 --model " + dir.file("awq"),
        "inspect --quantize fp8 --model " + dir.file("awq")}) {
    const CommandResult r = run_qwenvl(command);
    EXPECT_EQ(r.exit_code, 1) << command;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("--quantize fp8 needs a 16-bit checkpoint"), std::string::npos) << r.err;
  }
  const CommandResult unknown =
      run_qwenvl("generate --device cpu --prompt Hi --quantize int8 --model " + kTiny);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_EQ(count_lines(unknown.err), 1u) << unknown.err;
  EXPECT_NE(unknown.err.find("--quantize int8 is not supported"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace qwenvl
