// `qwenvl quantize` on the committed tiny fixture: the AWQ checkpoint it writes generates, and a
// group size that does not divide the projections is one clear error.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "checkpoint/test_checkpoints.h"

namespace qwenvl {
namespace {

struct CommandResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

CommandResult run_qwenvl(const std::string& args) {
  const std::string command = std::string(QWENVL_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

const std::string kTiny = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";

TEST(QuantizeCli, WritesAnAwqCheckpointThatGenerates) {
  test::TempDir dir;
  const CommandResult q = run_qwenvl("quantize --model " + kTiny + " --out " + dir.file("awq") +
                                     " --group-size 32 --dequantized " + dir.file("deq"));
  ASSERT_EQ(q.exit_code, 0) << q.output;
  const CommandResult awq = run_qwenvl(
      "generate --device cpu --max-new-tokens 4 --json "
      "--temperature 0 --ignore-eos --prompt Hi --model " +
      dir.file("awq"));
  ASSERT_EQ(awq.exit_code, 0) << awq.output;
  const CommandResult deq = run_qwenvl(
      "generate --device cpu --max-new-tokens 4 --json "
      "--temperature 0 --ignore-eos --prompt Hi --model " +
      dir.file("deq"));
  ASSERT_EQ(deq.exit_code, 0) << deq.output;
  // The same greedy tokens (the JSON line's "tokens" list).
  const auto tokens = [](const std::string& out) {
    const size_t at = out.find("\"tokens\"");
    return at == std::string::npos ? std::string() : out.substr(at, out.find(']', at) - at);
  };
  EXPECT_FALSE(tokens(awq.output).empty()) << awq.output;
  EXPECT_EQ(tokens(awq.output), tokens(deq.output));
}

TEST(QuantizeCli, AGroupSizeThatDoesNotDivideIsOneError) {
  test::TempDir dir;
  const CommandResult q =
      run_qwenvl("quantize --model " + kTiny + " --out " + dir.file("awq") + " --group-size 64");
  EXPECT_EQ(q.exit_code, 1) << q.output;
  EXPECT_NE(q.output.find("cannot be stored as 4-bit AWQ with group_size 64"), std::string::npos)
      << q.output;
}

}  // namespace
}  // namespace qwenvl
