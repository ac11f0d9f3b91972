// `qwenvl serve` as a process: it prints its URL, answers, and exits 0 on SIGTERM.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace {

TEST(ServeCommand, PrintsItsUrlServesAndStopsOnSigterm) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const std::string model = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(QWENVL_BINARY, "qwenvl", "serve", "--model", model.c_str(), "--device", "cpu", "--port",
          "0", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* stream = fdopen(out[0], "r");
  ASSERT_NE(stream, nullptr);
  int port = 0;
  char line[512];
  while (port == 0 && std::fgets(line, sizeof line, stream)) {
    const std::string text = line;
    const size_t at = text.find("http://127.0.0.1:");
    if (at != std::string::npos) port = std::stoi(text.substr(at + 17));
  }
  ASSERT_GT(port, 0) << "no URL printed";
  httplib::Client client("127.0.0.1", port);
  const auto health = client.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  const auto reply = client.Post(
      "/v1/chat/completions",
      R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})", "application/json");
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->status, 200) << reply->body;

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::fclose(stream);
}

}  // namespace

TEST(ServeCommand, RefusesAMalformedMediaDomainListBeforeLoading) {
  int err[2];
  ASSERT_EQ(pipe(err), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(err[1], STDERR_FILENO);
    close(err[0]);
    // No such model: the list is checked first.
    execl(QWENVL_BINARY, "qwenvl", "serve", "--model", "/nonexistent", "--allowed-media-domains",
          "images.example.com,,*.cdn.org", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(err[1]);
  std::string message;
  char buffer[512];
  for (ssize_t n; (n = read(err[0], buffer, sizeof buffer)) > 0;) message.append(buffer, size_t(n));
  close(err[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);  // bad input
  EXPECT_NE(message.find("--allowed-media-domains"), std::string::npos) << message;
}
