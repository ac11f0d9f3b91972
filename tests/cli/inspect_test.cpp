// Runs the real `qwenvl inspect` binary on generated checkpoints.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "checkpoint/awq_checkpoint.h"
#include "checkpoint/model_size.h"
#include "checkpoint/test_checkpoints.h"

namespace qwenvl {
namespace {

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

CommandResult run_qwenvl(const std::string& args) {
  std::string command = std::string(QWENVL_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

size_t count_lines(const std::string& s) {
  size_t lines = 0;
  for (char c : s) lines += c == '\n';
  return lines;
}

TEST(InspectCli, SummarisesATinyCheckpoint) {
  test::TempDir dir;
  ModelConfig config = test::write_tiny_checkpoint(dir, /*tied=*/false);
  CommandResult text = run_qwenvl("inspect --model " + dir.path());
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("2 layers, hidden 32"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("bf16"), std::string::npos) << text.output;

  CommandResult json = run_qwenvl("inspect --json --model " + dir.path());
  ASSERT_EQ(json.exit_code, 0) << json.output;
  auto j = nlohmann::json::parse(json.output);
  ParameterCounts params = count_parameters(config);
  EXPECT_EQ(j["parameters"]["total"].get<int64_t>(), params.total());
  EXPECT_EQ(j["parameters"]["lm_head"].get<int64_t>(), 64 * 32);  // untied: counted
  EXPECT_TRUE(j["weights"]["present"].get<bool>());
  EXPECT_EQ(j["weights"]["bytes_by_dtype"]["bf16"].get<int64_t>(), params.total() * 2);
  EXPECT_EQ(j["bf16_weight_bytes"].get<int64_t>(), params.total() * 2);
  // 2 layers x 2 kv heads x head_dim 8 x (k, v) x 2 bytes x 1000 tokens.
  EXPECT_EQ(j["kv_cache_bytes_per_1k_tokens_bf16"].get<int64_t>(), 2 * 2 * 8 * 2 * 2 * 1000);
  EXPECT_EQ(j["vision"]["depth"].get<int>(), 2);
}

// An AWQ checkpoint: the 16-bit model's parameters, the packed size of its weights, I32 on disk.
TEST(InspectCli, ReportsAnAwqCheckpointsQuantizedSize) {
  test::TempDir dir;
  const std::string src = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";
  write_awq_checkpoint(src, 32, {dir.file("awq"), ""});
  CommandResult text = run_qwenvl("inspect --model " + dir.file("awq"));
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("AWQ 4-bit projections, group 32"), std::string::npos) << text.output;
  CommandResult json = run_qwenvl("inspect --json --model " + dir.file("awq"));
  ASSERT_EQ(json.exit_code, 0) << json.output;
  auto j = nlohmann::json::parse(json.output);
  EXPECT_EQ(j["parameters"]["total"].get<int64_t>(),
            count_parameters(load_model_config(src)).total());
  EXPECT_GT(j["weights"]["bytes_by_dtype"]["i32"].get<int64_t>(), 0);
  EXPECT_EQ(j["quantization"]["group_size"].get<int>(), 32);
  EXPECT_LT(j["quantization"]["loaded_weight_bytes"].get<int64_t>(),
            j["bf16_weight_bytes"].get<int64_t>());
}

TEST(InspectCli, ConfigOnlyDirectoryReportsCountsFromTheConfig) {
  test::TempDir dir;
  test::write_file(dir.file("config.json"), test::tiny_config_json(/*tied=*/true));
  CommandResult text = run_qwenvl("inspect --model " + dir.path());
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("weights absent"), std::string::npos) << text.output;
  CommandResult json = run_qwenvl("inspect --model " + dir.path() + " --json");
  ASSERT_EQ(json.exit_code, 0) << json.output;
  auto j = nlohmann::json::parse(json.output);
  EXPECT_FALSE(j["weights"]["present"].get<bool>());
  EXPECT_EQ(j["parameters"]["lm_head"].get<int64_t>(), 0);  // tied
}

TEST(InspectCli, MissingDirectoryIsOneLineError) {
  CommandResult r = run_qwenvl("inspect --model /nonexistent/qwenvl-test-model");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(count_lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/qwenvl-test-model"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("error"), std::string::npos) << r.output;
}

TEST(InspectCli, CorruptWeightsAreOneLineErrorNamingTheFile) {
  test::TempDir dir;
  test::write_tiny_checkpoint(dir, /*tied=*/true);
  test::write_file(dir.file("model.safetensors"), "\xff\xff\xff\xff");
  CommandResult r = run_qwenvl("inspect --model " + dir.path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(count_lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
}

TEST(InspectCli, MissingFlagIsAnError) {
  CommandResult r = run_qwenvl("inspect");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--model"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qwenvl
