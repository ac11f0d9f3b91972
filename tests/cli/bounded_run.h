#pragma once
// Runs the qwenvl binary as a child process under a wall-clock limit and reports what a hostile-
// input test checks: exit status, whether it had to be killed, its peak resident memory, its time,
// and what it wrote to stdout and stderr.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace qwenvl::test {

struct BoundedRun {
  int exit_code = -1;      // -1 when killed by a signal
  int signal = 0;          // the signal that ended it, if any
  bool timed_out = false;  // killed at the limit
  double seconds = 0;
  int64_t max_rss_bytes = 0;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `args` follow the binary's path; `stdin_path` is opened as standard input ("/dev/null" by
// default); `stdout_path` receives standard output (a scratch file when empty).
inline BoundedRun run_bounded(const std::vector<std::string>& args, double limit_seconds,
                              const std::string& stdin_path = "/dev/null",
                              const std::string& stdout_path = "") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("qwenvl_bounded_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string out_path = stdout_path.empty() ? (dir / "out.txt").string() : stdout_path;
  const std::string err_path = (dir / "err.txt").string();
  std::vector<std::string> argv_storage = {QWENVL_BINARY};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    const int in = ::open(stdin_path.c_str(), O_RDONLY | O_NONBLOCK);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    if (in >= 0) ::fcntl(in, F_SETFL, ::fcntl(in, F_GETFL) & ~O_NONBLOCK);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  BoundedRun r;
  int status = 0;
  struct rusage usage {};
  for (;;) {
    const pid_t done = ::wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (elapsed > limit_seconds && !r.timed_out) {
      r.timed_out = true;
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.max_rss_bytes = int64_t(usage.ru_maxrss) * 1024;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (stdout_path.empty()) r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

}  // namespace qwenvl::test
