// The CLI handed what a careless or hostile user (or, later, a server's client) would hand it:
// special files, oversized files, absurd counts, numbers that wrap or underflow, image headers
// that promise more than they hold, output that cannot be written. Every case must end on its own
// within seconds, in well under 1 GiB of memory, with the documented exit status and one line on
// stderr (or, for numbers with a limit, behave as that limit). CI also runs this suite under
// AddressSanitizer + UndefinedBehaviorSanitizer.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/bounded_run.h"
#include "vision/image_writers.h"

namespace qwenvl::test {
namespace {

namespace fs = std::filesystem;

// Each case: killed if it runs longer, and must stay under this resident size.
constexpr double kLimitSeconds = 60;
constexpr int64_t kMemoryBound = int64_t(1) << 30;
// Exit statuses of core/error.h.
constexpr int kBadInput = 1;

const fs::path kTiny = fs::path(QWENVL_FIXTURES_DIR) / "models" / "tiny-tied";

fs::path scratch() {
  const fs::path dir = fs::temp_directory_path() / ("qwenvl_hostile_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

fs::path make_fifo(const std::string& name) {
  const fs::path path = scratch() / name;
  fs::remove(path);
  EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0);
  return path;
}

// A sparse file of `bytes` (reads as zeros, takes no disk).
fs::path make_sparse(const std::string& name, int64_t bytes) {
  const fs::path path = scratch() / name;
  { std::ofstream touch(path, std::ios::binary | std::ios::trunc); }
  fs::resize_file(path, uintmax_t(bytes));
  return path;
}

// A copy of the tiny model's directory (links to its files) with `file` replaced by `replacement`
// (a path to link instead; empty: a regular file with `content`).
fs::path model_with(const std::string& case_name, const std::string& file,
                    const fs::path& replacement, const std::string& content = "") {
  const fs::path dir = scratch() / ("model_" + case_name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(kTiny)) {
    const std::string name = entry.path().filename().string();
    if (name == file) continue;
    fs::create_symlink(fs::absolute(entry.path()), dir / name);
  }
  if (!replacement.empty())
    fs::create_symlink(replacement, dir / file);
  else
    write_file(dir / file, content);
  return dir;
}

std::string read_text(const fs::path& path) { return slurp(path); }

// Ends on its own, in bounded memory, with `exit_code` and one stderr line containing `needle`.
void expect_refused(const BoundedRun& r, const std::string& needle, int exit_code = kBadInput) {
  EXPECT_FALSE(r.timed_out) << "ran past " << kLimitSeconds << " s";
  EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << "\n" << r.err;
  EXPECT_EQ(r.exit_code, exit_code) << r.err;
  EXPECT_LT(r.max_rss_bytes, kMemoryBound);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line:\n" << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

std::vector<std::string> generate_args(const fs::path& model, std::vector<std::string> extra) {
  std::vector<std::string> args = {"generate",         "--model", model.string(), "--device", "cpu",
                                   "--max-new-tokens", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

class HostileInput : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kTiny / "config.json")) GTEST_SKIP() << "tiny fixture model missing";
  }
};

// ---- special and oversized files: refused before anything blocks or is read whole.

TEST_F(HostileInput, SpecialFilesAsImages) {
  const fs::path fifo = make_fifo("image.fifo");
  expect_refused(run_bounded(generate_args(kTiny, {"--image", fifo.string(), "--prompt", "hi"}),
                             kLimitSeconds),
                 "FIFO");
  expect_refused(
      run_bounded(generate_args(kTiny, {"--image", scratch().string(), "--prompt", "hi"}),
                  kLimitSeconds),
      "directory");
  expect_refused(
      run_bounded(generate_args(kTiny, {"--image", "/dev/zero", "--prompt", "hi"}), kLimitSeconds),
      "character device");
}

TEST_F(HostileInput, SpecialFilesInTheModelDirectory) {
  for (const char* file : {"config.json", "generation_config.json", "preprocessor_config.json",
                           "tokenizer.json", "model.safetensors"}) {
    SCOPED_TRACE(file);
    const fs::path fifo = make_fifo(std::string(file) + ".fifo");
    const fs::path model = model_with(std::string("fifo_") + file, file, fifo);
    expect_refused(run_bounded(generate_args(model, {"--prompt", "hi"}), kLimitSeconds), "FIFO");
  }
}

TEST_F(HostileInput, SpecialAndHugePromptFiles) {
  const fs::path fifo = make_fifo("prompt.fifo");
  expect_refused(run_bounded(generate_args(kTiny, {"--prompt-file", fifo.string()}), kLimitSeconds),
                 "FIFO");
  const fs::path huge = make_sparse("prompt.txt", (int64_t(16) << 20) + 1);
  expect_refused(run_bounded(generate_args(kTiny, {"--prompt-file", huge.string()}), kLimitSeconds),
                 "limit");
  expect_refused(run_bounded({"tokenize", "--tokenizer", kTiny.string(), "--file", fifo.string()},
                             kLimitSeconds),
                 "FIFO");
  expect_refused(run_bounded({"tokenize", "--tokenizer", kTiny.string(), "--file", huge.string()},
                             kLimitSeconds),
                 "limit");
}

TEST_F(HostileInput, HugeJsonFiles) {
  const fs::path huge = make_sparse("big.json", (int64_t(64) << 20) + 1);
  for (const char* file : {"config.json", "generation_config.json", "preprocessor_config.json"}) {
    SCOPED_TRACE(file);
    const fs::path model = model_with(std::string("huge_") + file, file, huge);
    expect_refused(run_bounded(generate_args(model, {"--prompt", "hi"}), kLimitSeconds), "limit");
  }
}

nlohmann::json last_json_line(const std::string& text) {
  std::string out = text;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  const size_t newline = out.rfind('\n');
  return nlohmann::json::parse(newline == std::string::npos ? out : out.substr(newline + 1));
}

TEST_F(HostileInput, PromptFromStandardInput) {
  const fs::path prompt = scratch() / "prompt.txt";
  write_file(prompt, "Describe a cat.");
  const BoundedRun r =
      run_bounded(generate_args(kTiny, {"--prompt-file", "-", "--temperature", "0", "--json"}),
                  kLimitSeconds, prompt.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const BoundedRun same = run_bounded(
      generate_args(kTiny, {"--prompt", "Describe a cat.", "--temperature", "0", "--json"}),
      kLimitSeconds);
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(last_json_line(r.out)["prompt_token_ids"],
            last_json_line(same.out)["prompt_token_ids"]);
  EXPECT_EQ(last_json_line(r.out)["tokens"], last_json_line(same.out)["tokens"]);
}

// ---- counts from files and flags: bounded before anything is sized from them.

TEST_F(HostileInput, ConfigDimensionsOutOfBounds) {
  const nlohmann::json base = nlohmann::json::parse(read_text(kTiny / "config.json"));
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"num_hidden_layers", 100000},    {"hidden_size", int64_t(1) << 40},
      {"vocab_size", int64_t(1) << 31}, {"intermediate_size", 1 << 30},
      {"num_attention_heads", 1 << 20}, {"max_position_embeddings", int64_t(1) << 40},
  };
  for (const auto& [key, value] : cases) {
    SCOPED_TRACE(key);
    nlohmann::json config = base;
    config[key] = value;
    const fs::path model = model_with("config_" + key, "config.json", {}, config.dump());
    expect_refused(run_bounded(generate_args(model, {"--prompt", "hi"}), kLimitSeconds), key);
  }
  nlohmann::json vision = base;
  vision["vision_config"]["depth"] = 1 << 20;
  const fs::path model = model_with("config_depth", "config.json", {}, vision.dump());
  expect_refused(run_bounded(generate_args(model, {"--prompt", "hi"}), kLimitSeconds), "depth");
}

TEST_F(HostileInput, FlagsOutOfRangeOrWrapping) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--top-k", "4294967297"},
      {"--max-new-tokens", "99999999999999999999"},
      {"--max-new-tokens", "0"},
      {"--threads", "100000"},
      {"--seed", "-1"},
      {"--max-context", "-5"},
      {"--min-pixels", "500000000"},
      {"--max-pixels", "0"},
      {"--temperature", "inf"},
      {"--temperature", "nan"},
      {"--temperature", "-1"},
      {"--top-p", "0"},
      {"--top-p", "1.5"},
      {"--repetition-penalty", "1e-39"},
      {"--min-p", "2"},
      {"--temperature", "1e400"},
  };
  for (const auto& [flag, value] : cases) {
    SCOPED_TRACE(flag + " " + value);
    expect_refused(
        run_bounded(generate_args(kTiny, {"--prompt", "hi", flag, value}), kLimitSeconds), flag);
  }
  expect_refused(
      run_bounded({"preprocess", "--image", "x.png", "--max-pixels", "1e9"}, kLimitSeconds),
      "--max-pixels");
}

TEST_F(HostileInput, BadValuesInGenerationConfigNameTheFile) {
  nlohmann::json config = nlohmann::json::parse(read_text(kTiny / "generation_config.json"));
  config["temperature"] = -1;
  const fs::path model = model_with("gen_temperature", "generation_config.json", {}, config.dump());
  const BoundedRun r = run_bounded(generate_args(model, {"--prompt", "hi"}), kLimitSeconds);
  expect_refused(r, "generation_config.json");
  EXPECT_EQ(r.err.find("--temperature"), std::string::npos) << r.err;
  config["temperature"] = 0.7;
  config["top_k"] = 1e12;
  const fs::path model2 = model_with("gen_top_k", "generation_config.json", {}, config.dump());
  expect_refused(run_bounded(generate_args(model2, {"--prompt", "hi"}), kLimitSeconds), "top_k");
}

// ---- work bounded before it is done: token counts from image headers, checked first.

uint32_t crc32(const uint8_t* data, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// A PNG whose IHDR declares width x height but whose data is that of a 1x1 image: its header
// promises a large image that never decodes.
std::string png_header_only(uint32_t width, uint32_t height) {
  Bytes png = encode_png_rgb(1, 1, Bytes{10, 20, 30});
  // Signature (8), IHDR length (4), "IHDR" (4), width, height at 16 and 20, CRC after 13 bytes.
  auto put_be32_at = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + size_t(i)] = uint8_t(v >> (24 - 8 * i));
  };
  put_be32_at(16, width);
  put_be32_at(20, height);
  put_be32_at(29, crc32(png.data() + 12, 17));
  return std::string(png.begin(), png.end());
}

TEST_F(HostileInput, ImagesAreCountedBeforeTheyAreDecoded) {
  const fs::path tiny_png = scratch() / "one_pixel.png";
  write_file(tiny_png, png_header_only(1, 1));
  // A 1x1 image asked to grow to 50 M pixels: 64,000 tokens, refused by the context check
  // before any pixel is resized.
  expect_refused(
      run_bounded(generate_args(kTiny, {"--image", tiny_png.string(), "--min-pixels", "50000000",
                                        "--max-pixels", "51380224", "--prompt", "hi"}),
                  kLimitSeconds),
      "context");
  // 200 noise images of 512 x 512, 324 tokens each: their pixel values would take 1.3 GB, but
  // their token counts alone exceed the context.
  const fs::path big = scratch() / "noise_512.png";
  const Bytes noise = encode_png_rgb(512, 512, random_bytes(512 * 512 * 3, 5));
  write_file(big, std::string(noise.begin(), noise.end()));
  std::vector<std::string> args = {"--prompt", "hi"};
  for (int i = 0; i < 200; ++i) {
    args.push_back("--image");
    args.push_back(big.string());
  }
  expect_refused(run_bounded(generate_args(kTiny, args), kLimitSeconds), "context");
  // More images than a request may hold.
  std::vector<std::string> many = {"--prompt", "hi"};
  for (int i = 0; i < 257; ++i) {
    many.push_back("--image");
    many.push_back(tiny_png.string());
  }
  expect_refused(run_bounded(generate_args(kTiny, many), kLimitSeconds), "256");
}

TEST_F(HostileInput, ImageBombs) {
  // A BMP whose width x height overflows 64 bits.
  Bytes bmp = {'B', 'M'};
  put_le32(bmp, 54 + 12);
  put_le32(bmp, 0);
  put_le32(bmp, 54);
  put_le32(bmp, 40);
  put_le32(bmp, 0x7FFFFFFF);  // width
  put_le32(bmp, 0x7FFFFFFF);  // height
  put_le16(bmp, 1);
  put_le16(bmp, 24);
  for (int i = 0; i < 6; ++i) put_le32(bmp, 0);
  for (int i = 0; i < 12; ++i) bmp.push_back(0x55);
  const fs::path bmp_path = scratch() / "overflow.bmp";
  write_file(bmp_path, std::string(bmp.begin(), bmp.end()));
  expect_refused(run_bounded(generate_args(kTiny, {"--image", bmp_path.string(), "--prompt", "hi"}),
                             kLimitSeconds),
                 "overflow.bmp");
  expect_refused(run_bounded({"preprocess", "--image", bmp_path.string()}, kLimitSeconds),
                 "overflow.bmp");
  // A PNG header of 60000 x 60000 (3.6 G pixels) over a 1x1 image's data.
  const fs::path png_path = scratch() / "huge_header.png";
  write_file(png_path, png_header_only(60000, 60000));
  expect_refused(run_bounded({"preprocess", "--image", png_path.string()}, kLimitSeconds),
                 "huge_header.png");
}

TEST_F(HostileInput, PromptLongerThanTheContext) {
  const fs::path prompt = scratch() / "long_prompt.txt";
  std::string text;
  for (int i = 0; i < 40000; ++i) text += "word ";
  write_file(prompt, text);
  expect_refused(
      run_bounded(generate_args(kTiny, {"--prompt-file", prompt.string()}), kLimitSeconds),
      "context");
}

// ---- numerics: parameters at the edge of float behave as their limit.

TEST_F(HostileInput, TemperatureBelowFloatRangeIsGreedy) {
  auto tokens = [&](const std::string& temperature) {
    const BoundedRun r = run_bounded(
        generate_args(kTiny, {"--prompt", "Describe a cat.", "--temperature", temperature,
                              "--ignore-eos", "--max-new-tokens", "6", "--json", "--seed", "7"}),
        kLimitSeconds);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return last_json_line(r.out)["tokens"];
  };
  const nlohmann::json greedy = tokens("0");
  EXPECT_EQ(tokens("1e-39"), greedy);
  EXPECT_EQ(tokens("1e-30"), greedy);
}

// ---- output that cannot be written is an error.

TEST_F(HostileInput, FullDiskForOutput) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  expect_refused(run_bounded(generate_args(kTiny, {"--prompt", "hi"}), kLimitSeconds, "/dev/null",
                             "/dev/full"),
                 "standard output");
  expect_refused(run_bounded(generate_args(kTiny, {"--prompt", "hi", "--dump-logits", "/dev/full"}),
                             kLimitSeconds),
                 "/dev/full");
  expect_refused(run_bounded({"tokenize", "--tokenizer", kTiny.string(), "--text", "hello"},
                             kLimitSeconds, "/dev/null", "/dev/full"),
                 "standard output");
}

}  // namespace
}  // namespace qwenvl::test
