// `qwenvl tokenize` end to end: the binary's output for a few commands.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "text_test_util.h"

namespace qwenvl {
namespace {

struct Result {
  int status;
  std::string out;
};

Result run(const std::string& args) {
  std::string command = std::string(QWENVL_BINARY) + " tokenize " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  Result r{-1, ""};
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  r.status = pclose(pipe);
  return r;
}

const std::string kTokenizer = "--tokenizer " + test::fixture_path("tokenizer");

TEST(TokenizeCli, EncodesDecodesAndBuildsChatPrompts) {
  Result text = run(kTokenizer + " --text 'Hello world<|im_end|>'");
  EXPECT_EQ(text.status, 0);
  EXPECT_EQ(text.out, "9707 1879 151645\n");

  Result decoded = run(kTokenizer + " --decode '9707,1879 151645' --skip-special --json");
  EXPECT_EQ(decoded.status, 0);
  EXPECT_EQ(decoded.out, "{\"text\":\"Hello world\"}\n");

  Result chat = run(kTokenizer + " --chat-prompt 'Hi' --image-pads 3 --json");
  EXPECT_EQ(chat.status, 0);
  EXPECT_NE(chat.out.find("151652,151655,151655,151655,151653"), std::string::npos) << chat.out;
}

TEST(TokenizeCli, BadInputIsOneErrorLine) {
  Result no_mode = run(kTokenizer);
  EXPECT_NE(no_mode.status, 0);
  EXPECT_NE(no_mode.out.find("error: give exactly one of"), std::string::npos) << no_mode.out;
  Result bad_ids = run(kTokenizer + " --decode 1,x");
  EXPECT_NE(bad_ids.status, 0);
  EXPECT_NE(bad_ids.out.find("--decode expects token ids"), std::string::npos) << bad_ids.out;
  Result missing = run("--tokenizer /nonexistent --text a");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.out.find("cannot open tokenizer file"), std::string::npos) << missing.out;
}

}  // namespace
}  // namespace qwenvl
