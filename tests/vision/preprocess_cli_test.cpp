// `qwenvl preprocess` end to end: JSON fields, the .npy it writes, the token warning, errors.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "image_writers.h"

namespace qwenvl {
namespace {

namespace fs = std::filesystem;

struct CliResult {
  int status;
  std::string out;  // stdout and stderr together
};

CliResult run(const std::string& args) {
  std::string cmd = std::string(QWENVL_BINARY) + " preprocess " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  CliResult r{-1, ""};
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  r.status = pclose(pipe);
  return r;
}

class PreprocessCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("qwenvl_vision_cli_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::create_directories(dir_);
    test::Bytes png = test::encode_png_rgb(451, 300, test::random_bytes(451 * 300 * 3, 5));
    std::ofstream(dir_ / "photo.png", std::ios::binary)
        .write(reinterpret_cast<const char*>(png.data()), std::streamsize(png.size()));
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(PreprocessCli, PrintsGridTokensAndWritesNpy) {
  CliResult r = run("--image " + path("photo.png") + " --json --out " + path("pv.npy"));
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["width"], 451);
  EXPECT_EQ(j["height"], 300);
  EXPECT_EQ(j["resized_width"], 448);
  EXPECT_EQ(j["resized_height"], 308);
  EXPECT_EQ(j["grid_thw"], nlohmann::json({1, 22, 32}));
  EXPECT_EQ(j["tokens"], 22 * 32 / 4);
  // .npy: 128-byte header (version 1.0, padded to 64) then 704 x 1176 float32.
  EXPECT_EQ(fs::file_size(path("pv.npy")), 128u + 704u * 1176u * 4u);
  std::ifstream npy(path("pv.npy"), std::ios::binary);
  std::string header(128, '\0');
  npy.read(header.data(), 128);
  EXPECT_EQ(header.substr(1, 5), "NUMPY");
  EXPECT_NE(header.find("'shape': (704, 1176)"), std::string::npos) << header;
  EXPECT_EQ(header.back(), '\n');
}

TEST_F(PreprocessCli, WarnsAboutHugeTokenCounts) {
  CliResult small = run("--image " + path("photo.png"));
  ASSERT_EQ(small.status, 0) << small.out;
  EXPECT_EQ(small.out.find("warning"), std::string::npos) << small.out;
  EXPECT_NE(small.out.find("tokens     176"), std::string::npos) << small.out;
  CliResult big = run("--image " + path("photo.png") + " --min-pixels 4000000");
  ASSERT_EQ(big.status, 0) << big.out;
  EXPECT_NE(big.out.find("warning: this image becomes"), std::string::npos) << big.out;
}

TEST_F(PreprocessCli, ErrorsAreOneLine) {
  CliResult missing = run("--image " + path("nope.jpg"));
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.out.find("cannot open image"), std::string::npos) << missing.out;
  EXPECT_EQ(std::count(missing.out.begin(), missing.out.end(), '\n'), 1) << missing.out;
  CliResult no_flag = run("");
  EXPECT_NE(no_flag.status, 0);
  EXPECT_NE(no_flag.out.find("--image"), std::string::npos) << no_flag.out;
  CliResult bad = run("--image " + path("photo.png") + " --max-pixels lots");
  EXPECT_NE(bad.status, 0);
}

}  // namespace
}  // namespace qwenvl
