// Runs the real `qwenvl plan` binary on directories holding only an official config.json.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "backend/backend.h"
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
  const test::BoundedRun r = test::run_bounded(argv, 60);
  return {r.exit_code, r.out, r.err};
}

size_t count_lines(const std::string& s) {
  size_t lines = 0;
  for (char c : s) lines += c == '\n';
  return lines;
}

// A directory with only the official config.json of `size`.
struct ConfigOnly {
  test::TempDir dir;
  explicit ConfigOnly(const std::string& size) {
    std::filesystem::copy_file(std::string(QWENVL_FIXTURES_DIR) + "/configs/" + size + ".json",
                               dir.file("config.json"));
  }
  std::string model() const { return "--model " + dir.path(); }
};

// With a second GPU here, what does not fit on cuda:0 goes there (a GPU --max-memory does not name
// may use its free memory), so tests of streaming and of a too small budget need at most one.
bool at_most_one_gpu() { return gpu_free_memory().size() <= 1; }

TEST(PlanCli, PlansAConfigOnlyDirectory) {
  ConfigOnly seven("7B");
  const CommandResult text = run_qwenvl("plan " + seven.model() + " --max-memory cuda:0=24GiB");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("model.layers.0-27      → cuda:0"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("lm_head"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("KV cache   32,768 tokens planned"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("an estimate"), std::string::npos) << text.out;
  EXPECT_TRUE(text.err.empty()) << text.err;

  const CommandResult json =
      run_qwenvl("plan " + seven.model() + " --max-memory cuda:0=24GiB --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  ASSERT_EQ(j["modules"].size(), 32u);
  EXPECT_EQ(j["modules"][2]["name"], "model.layers.0");
  EXPECT_EQ(j["modules"][2]["device"], "cuda:0");
  const auto& gpu = j["devices"][0];
  EXPECT_EQ(gpu["device"], "cuda:0");
  EXPECT_EQ(gpu["budget_bytes"].get<int64_t>(), int64_t(24) << 30);
  EXPECT_LE(gpu["total_bytes"].get<int64_t>(), gpu["budget_bytes"].get<int64_t>());
  EXPECT_GE(j["kv_capacity_tokens"].get<int64_t>(), 32768);
  EXPECT_GT(j["decode_estimate"]["tokens_per_s"].get<double>(), 0);
}

TEST(PlanCli, StreamsWhatDoesNotFitAndTakesADeviceMap) {
  if (!at_most_one_gpu()) GTEST_SKIP() << "cuda:1 would take what cuda:0 does not hold";
  ConfigOnly three("3B");
  const CommandResult json =
      run_qwenvl("plan " + three.model() + " --max-memory cuda:0=4GiB --max-context 8192 --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  // The vision tower streams first, then the last layers; the final norm stays resident.
  EXPECT_EQ(j["modules"][0]["placement"], "stream");
  EXPECT_EQ(j["modules"][1]["placement"], "gpu");
  EXPECT_EQ(j["modules"][j["modules"].size() - 2]["placement"], "stream");
  EXPECT_EQ(j["modules"].back()["placement"], "gpu");

  nlohmann::json map = nlohmann::json::object();
  for (const auto& m : j["modules"]) map[m["name"].get<std::string>()] = "cuda:0";
  map["model.norm"] = "cpu";
  map["visual"] = 0;  // transformers' form of cuda:0
  test::write_file(three.dir.file("map.json"), map.dump());
  const CommandResult mapped =
      run_qwenvl("plan " + three.model() + " --max-memory cuda:0=20GiB --device-map " +
                 three.dir.file("map.json"));
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  EXPECT_NE(mapped.out.find("model.norm             → cpu"), std::string::npos) << mapped.out;

  map["model.layers.99"] = "cuda:0";
  test::write_file(three.dir.file("map.json"), map.dump());
  const CommandResult unknown =
      run_qwenvl("plan " + three.model() + " --max-memory cuda:0=20GiB --device-map " +
                 three.dir.file("map.json"));
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("unknown module 'model.layers.99'"), std::string::npos) << unknown.err;
}

TEST(PlanCli, BadInputIsOneLineOnStderr) {
  ConfigOnly seven("7B");
  for (const char* spec : {"cuda:0", "cuda:0=20XB", "gpu:0=1GiB", "cuda:0=1GiB,cuda:0=2GiB"}) {
    const CommandResult r =
        run_qwenvl("plan " + seven.model() + " --max-memory " + std::string(spec));
    EXPECT_EQ(r.exit_code, 1) << spec;
    EXPECT_EQ(count_lines(r.err), 1u) << r.err;
    EXPECT_NE(r.err.find("--max-memory"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  if (gpu_free_memory().empty()) {  // with a GPU here, the plan is for its free memory
    const CommandResult no_gpu = run_qwenvl("plan " + seven.model());
    EXPECT_EQ(no_gpu.exit_code, 1);
    EXPECT_NE(no_gpu.err.find("there is no GPU here"), std::string::npos) << no_gpu.err;
  }
  const CommandResult offload =
      run_qwenvl("plan " + seven.model() + " --max-memory cuda:0=8GiB --offload disk");
  EXPECT_EQ(offload.exit_code, 1);
  EXPECT_NE(offload.err.find("--offload"), std::string::npos) << offload.err;
}

TEST(PlanCli, ABudgetTooSmallIsAResourceLimit) {
  if (!at_most_one_gpu()) GTEST_SKIP() << "cuda:1 would take what cuda:0 does not hold";
  ConfigOnly seven("7B");
  const CommandResult r = run_qwenvl("plan " + seven.model() + " --max-memory cuda:0=100MiB");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(count_lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("does not hold the workspaces"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qwenvl
