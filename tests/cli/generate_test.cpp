// `qwenvl generate` as scripts use it: exit codes, one-line errors on stderr, the --json summary
// and --dump-logits / --dump-activations / --dump-vision, on the tiny fixture model and on
// hand-made bad inputs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "common/npy.h"
#include "common/reference_logits.h"
#include "generate_run.h"

namespace {

namespace fs = std::filesystem;
using namespace qwenvl::cli_test;

const fs::path kTiny = fs::path(QWENVL_FIXTURES_DIR) / "models" / "tiny-tied";

bool have_tiny() { return fs::exists(kTiny / "config.json") && fs::exists(kTiny / "reference"); }

TEST(GenerateCli, UnknownFlag) {
  expect_one_line_error(run_generate({"--model", "x", "--prompt", "hi", "--frobnicate", "1"}),
                        "--frobnicate");
}

TEST(GenerateCli, MissingModelDirectory) {
  expect_one_line_error(run_generate({"--model", "/nonexistent/qwenvl", "--prompt", "hi"}),
                        "/nonexistent/qwenvl");
}

TEST(GenerateCli, AnotherArchitecture) {
  const fs::path dir = scratch_dir() / "llama";
  fs::create_directories(dir);
  std::ofstream(dir / "config.json")
      << R"({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64})";
  expect_one_line_error(run_generate({"--model", dir.string(), "--prompt", "hi"}), "llama");
}

TEST(GenerateCli, MissingImage) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  expect_one_line_error(run_generate({"--model", kTiny.string(), "--image", "/nonexistent/cat.png",
                                      "--prompt", "hi", "--device", "cpu"}),
                        "/nonexistent/cat.png");
}

TEST(GenerateCli, PromptBeyondContext) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  expect_one_line_error(
      run_generate({"--model", kTiny.string(), "--prompt", "hi", "--max-new-tokens", "100",
                    "--max-context", "64", "--device", "cpu"}),
      "context");
}

TEST(GenerateCli, BudgetsNeedAGpu) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  for (const char* flag : {"--max-memory", "--offload", "--device-map"})
    expect_one_line_error(run_generate({"--model", kTiny.string(), "--prompt", "hi", "--device",
                                        "cpu", flag, "cuda:0=1GiB"}),
                          "use --device cuda");
}

TEST(GenerateCli, TextOnlyJsonAndLogits) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  const fs::path logits = scratch_dir() / "logits.npy";
  // No repetition penalty: generation_config.json's 1.05 lowers the logits of the prompt's
  // tokens, so the first token would not be the argmax of the dumped logits when one of them is.
  RunResult r =
      run_generate({"--model", kTiny.string(), "--prompt", "Describe a cat.", "--max-new-tokens",
                    "5", "--temperature", "0", "--repetition-penalty", "1", "--ignore-eos",
                    "--device", "cpu", "--json", "--dump-logits", logits.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = last_json_line(r.out);
  EXPECT_EQ(j["tokens"].size(), 5u);
  EXPECT_EQ(j["generated_tokens"], 5);
  EXPECT_EQ(j["prompt_tokens"], j["prompt_token_ids"].size());
  EXPECT_TRUE(j["image_grid_thw"].empty());
  for (const char* key :
       {"load_ms", "preprocess_ms", "vision_ms", "prefill_ms", "decode_ms", "decode_tokens_per_s"})
    EXPECT_TRUE(j["timings"].contains(key)) << key;
  EXPECT_GT(j["peak_memory_bytes"]["cpu"].get<int64_t>(), 0);
  // A 1-D float32 .npy.
  const qwenvl::test::Npy npy = qwenvl::test::read_npy(logits.string());
  EXPECT_EQ(npy.descr, "<f4");
  ASSERT_EQ(npy.shape.size(), 1u);
  const std::vector<double> v = npy.as_double();
  // Greedy: the first generated token is the argmax of the dumped logits.
  EXPECT_EQ(int64_t(std::max_element(v.begin(), v.end()) - v.begin()),
            j["tokens"][0].get<int64_t>());
  // Same flags, same output.
  RunResult again =
      run_generate({"--model", kTiny.string(), "--prompt", "Describe a cat.", "--max-new-tokens",
                    "5", "--temperature", "0", "--repetition-penalty", "1", "--ignore-eos",
                    "--device", "cpu", "--json"});
  EXPECT_EQ(last_json_line(again.out)["tokens"], j["tokens"]);
}

// OpenAI's penalties as flags: bounded like every sampling flag, and they steer greedy decoding
// away from the tokens it has produced.
TEST(GenerateCli, PresenceAndFrequencyPenalties) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  expect_one_line_error(run_generate({"--model", kTiny.string(), "--prompt", "hi",
                                      "--frequency-penalty", "2.5", "--device", "cpu"}),
                        "frequency-penalty");
  const std::vector<std::string> base = {"--model",
                                         kTiny.string(),
                                         "--prompt",
                                         "Describe a cat.",
                                         "--temperature",
                                         "0",
                                         "--max-new-tokens",
                                         "24",
                                         "--ignore-eos",
                                         "--device",
                                         "cpu",
                                         "--json"};
  const RunResult plain = run_generate(base);
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  std::vector<std::string> args = base;
  args.insert(args.end(), {"--presence-penalty", "2", "--frequency-penalty", "2"});
  const RunResult penalised = run_generate(args);
  ASSERT_EQ(penalised.exit_code, 0) << penalised.err;
  EXPECT_NE(last_json_line(penalised.out)["tokens"], last_json_line(plain.out)["tokens"]);
}

// --dump-activations: the last prompt position's embedding, then per layer the attention output
// and the residual stream after attention and after the MLP, [3 · layers + 1, hidden]; each half
// of a layer changes the residual stream.
TEST(GenerateCli, DumpsActivationsPerLayer) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  const fs::path activations = scratch_dir() / "activations.npy";
  RunResult r = run_generate({"--model", kTiny.string(), "--prompt", "Describe a cat.",
                              "--max-new-tokens", "2", "--temperature", "0", "--device", "cpu",
                              "--dump-activations", activations.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json config = nlohmann::json::parse(read_file(kTiny / "config.json"));
  const nlohmann::json& text = config.contains("text_config") ? config["text_config"] : config;
  const int64_t layers = text["num_hidden_layers"], hidden = text["hidden_size"];
  const qwenvl::test::Npy npy = qwenvl::test::read_npy(activations.string());
  ASSERT_EQ(npy.shape, (std::vector<int64_t>{3 * layers + 1, hidden}));
  const std::vector<double> v = npy.as_double();
  for (double value : v) ASSERT_TRUE(std::isfinite(value));
  auto changed = [&](int64_t step, int64_t before) {
    double change = 0;
    for (int64_t i = 0; i < hidden; ++i)
      change += std::fabs(v[size_t(step * hidden + i)] - v[size_t(before * hidden + i)]);
    return change > 0;
  };
  for (int64_t l = 0; l < layers; ++l) {
    EXPECT_TRUE(changed(3 * l + 2, 3 * l)) << "attention of layer " << l;
    EXPECT_TRUE(changed(3 * l + 3, 3 * l + 2)) << "MLP of layer " << l;
  }
}

// --dump-vision: the vision tower's output for the prompt's image, [tokens, hidden], as the
// reference fixture's transformers run computed it (fp32 here as there).
TEST(GenerateCli, DumpsVisionEmbeddings) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  const fs::path vision = scratch_dir() / "vision.npy";
  RunResult r = run_generate(
      {"--model", kTiny.string(), "--image", (kTiny / "reference" / "chelsea.png").string(),
       "--prompt", "What animal is this?", "--min-pixels", "3136", "--max-pixels", "50176",
       "--max-new-tokens", "1", "--device", "cpu", "--dump-vision", vision.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const qwenvl::test::Npy ours = qwenvl::test::read_npy(vision.string());
  const qwenvl::test::Npy want =
      qwenvl::test::read_npy((kTiny / "reference" / "one_image_vision.npy").string());
  ASSERT_EQ(ours.shape, want.shape);
  const std::vector<double> a = ours.as_double(), b = want.as_double();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) diff += (a[i] - b[i]) * (a[i] - b[i]), norm += b[i] * b[i];
  EXPECT_LT(std::sqrt(diff / norm), 1e-4);
}

TEST(GenerateCli, OneImageSampled) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  fs::path image;
  for (const auto& entry : fs::directory_iterator(fs::path(QWENVL_FIXTURES_DIR) / "images"))
    if (entry.path().extension() == ".png" || entry.path().extension() == ".jpg") {
      image = entry.path();
      break;
    }
  ASSERT_FALSE(image.empty());
  std::vector<std::string> args{"--model",
                                kTiny.string(),
                                "--image",
                                image.string(),
                                "--prompt",
                                "What is this?",
                                "--max-new-tokens",
                                "4",
                                "--temperature",
                                "0.8",
                                "--top-k",
                                "20",
                                "--seed",
                                "3",
                                "--ignore-eos",
                                "--max-pixels",
                                "50176",
                                "--device",
                                "cpu",
                                "--json"};
  RunResult r = run_generate(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = last_json_line(r.out);
  ASSERT_EQ(j["image_grid_thw"].size(), 1u);
  const auto& g = j["image_grid_thw"][0];
  EXPECT_EQ(g[0], 1);
  EXPECT_LE(g[1].get<int64_t>() * g[2].get<int64_t>() * 14 * 14, 50176);
  EXPECT_EQ(j["tokens"].size(), 4u);
  EXPECT_EQ(last_json_line(run_generate(args).out)["tokens"], j["tokens"]);  // seeded: repeatable
}

TEST(GenerateCli, ImageTokenBudgetDownscalesWithANotice) {
  if (!have_tiny()) GTEST_SKIP() << "tiny fixture model not generated yet";
  fs::path image;
  for (const auto& entry : fs::directory_iterator(fs::path(QWENVL_FIXTURES_DIR) / "images"))
    if (entry.path().extension() == ".jpg") image = entry.path();
  ASSERT_FALSE(image.empty());
  const RunResult r = run_generate({"--model", kTiny.string(), "--image", image.string(), "--image",
                                    image.string(), "--prompt", "Compare.", "--max-new-tokens", "1",
                                    "--max-image-tokens", "40", "--device", "cpu", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("downscaled to"), std::string::npos) << r.err;
  const nlohmann::json j = last_json_line(r.out);
  int64_t tokens = 0;
  for (const auto& g : j["image_grid_thw"])
    tokens += g[0].get<int64_t>() * g[1].get<int64_t>() * g[2].get<int64_t>() / 4;
  EXPECT_LE(tokens, 40);
  EXPECT_GT(tokens, 20);
}

// End to end against the reference cases whose messages a command line can express: prompt
// ids, dumped logits and greedy tokens as transformers produced them.
void check_reference_case(const std::string& model, const std::string& case_name,
                          const std::vector<std::string>& extra_args) {
  const fs::path dir = fs::path(QWENVL_FIXTURES_DIR) / "models" / model;
  if (!fs::exists(dir / "reference" / "cases.json")) GTEST_SKIP() << "fixtures not generated";
  nlohmann::json entry;
  for (const auto& e : nlohmann::json::parse(read_file(dir / "reference" / "cases.json")))
    if (e["name"] == case_name) entry = e;
  ASSERT_FALSE(entry.is_null()) << case_name;
  const fs::path logits = scratch_dir() / (model + "_" + case_name + ".npy");
  std::vector<std::string> args{"--model",
                                dir.string(),
                                "--max-new-tokens",
                                std::to_string(entry["greedy_ids"].size()),
                                "--temperature",
                                "0",
                                "--repetition-penalty",
                                "1",
                                "--ignore-eos",
                                "--device",
                                "cpu",
                                "--json",
                                "--dump-logits",
                                logits.string(),
                                "--min-pixels",
                                std::to_string(entry["min_pixels"].get<int64_t>()),
                                "--max-pixels",
                                std::to_string(entry["max_pixels"].get<int64_t>())};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  RunResult r = run_generate(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = last_json_line(r.out);
  EXPECT_EQ(j["prompt_token_ids"], entry["input_ids"]);
  EXPECT_EQ(j["image_grid_thw"], entry["image_grid_thw"]);
  const auto margins = entry["greedy_top2_margins"].get<std::vector<double>>();
  for (size_t i = 0; i < margins.size() && margins[i] > 1e-3; ++i)
    EXPECT_EQ(j["tokens"][i], entry["greedy_ids"][i]) << "step " << i;
  // Dumped logits against the reference logits (both <f4, 1-D, format 1.0).
  auto floats = [](const std::string& npy) {
    const size_t header_len = size_t(uint8_t(npy[8])) | size_t(uint8_t(npy[9])) << 8;
    std::vector<float> v((npy.size() - 10 - header_len) / 4);
    std::memcpy(v.data(), npy.data() + 10 + header_len, v.size() * 4);
    return v;
  };
  const std::vector<float> ours = floats(read_file(logits));
  const std::vector<double> ref = qwenvl::test::reference_logits(dir, entry);
  ASSERT_EQ(ours.size(), ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (ours[i] - ref[i]) * (ours[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-4);
}

TEST(GenerateCli, ReferenceTextOnly) {
  check_reference_case("tiny-untied", "text_only", {"--prompt", "Write one line about the sea."});
}

TEST(GenerateCli, ReferenceOneImage) {
  const fs::path image =
      fs::path(QWENVL_FIXTURES_DIR) / "models" / "tiny-tied" / "reference" / "chelsea.png";
  check_reference_case("tiny-tied", "one_image",
                       {"--image", image.string(), "--prompt", "What animal is this?"});
}

}  // namespace
