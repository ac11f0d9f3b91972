#pragma once
// Running `qwenvl generate` as a process from the CLI tests: its exit status, stdout and stderr,
// and the checks they share (one-line errors, the --json summary line).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace qwenvl::cli_test {

namespace fs = std::filesystem;

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `s` as one single-quoted shell word.
inline std::string quote(const std::string& s) {
  std::string q(1, '\'');
  for (char c : s) {
    if (c == '\'')
      q.append("'\\''");
    else
      q.push_back(c);
  }
  q.push_back('\'');
  return q;
}

// A folder of this test process's own under the system temp dir.
inline fs::path scratch_dir() {
  fs::path dir = fs::temp_directory_path() / ("qwenvl_cli_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

inline RunResult run_generate(const std::vector<std::string>& args) {
  const fs::path dir = scratch_dir();
  std::string cmd = quote(QWENVL_BINARY);
  cmd.append(" generate");
  for (const auto& a : args) cmd.append(" ").append(quote(a));
  cmd.append(" >").append(quote((dir / "out.txt").string()));
  cmd.append(" 2>").append(quote((dir / "err.txt").string()));
  RunResult r;
  const int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(dir / "out.txt");
  r.err = read_file(dir / "err.txt");
  return r;
}

// A non-zero exit (`exit_code` when given) and exactly one line on stderr that mentions `needle`.
inline void expect_one_line_error(const RunResult& r, const std::string& needle,
                                  int exit_code = -1) {
  if (exit_code < 0)
    EXPECT_NE(r.exit_code, 0);
  else
    EXPECT_EQ(r.exit_code, exit_code);
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
}

// The last line of stdout, where --json puts its summary.
inline nlohmann::json last_json_line(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  const size_t nl = s.rfind('\n');
  return nlohmann::json::parse(s.substr(nl == std::string::npos ? 0 : nl + 1));
}

}  // namespace qwenvl::cli_test
