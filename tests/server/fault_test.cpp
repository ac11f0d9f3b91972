// `qwenvl serve` as a process under a bounded stream of faulty clients on loopback: of every 20
// requests, one is malformed JSON, one is over --max-request-bytes, one sends its body a byte
// at a time (every fifth such client stalls halfway, and the server must drop it at its read
// timeout) and one leaves mid-stream; the rest are plain, streamed and image requests whose
// greedy answers must equal the ones the idle server gave first. Afterwards the server still
// answers, /metrics shows nothing running or queued, and SIGTERM ends it with status 0.
// QWENVL_FAULT_REQUESTS sets the count (default 2,000; 1,000 under AddressSanitizer).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const std::string kFixtures = QWENVL_FIXTURES_DIR;
constexpr int kClients = 6;
// Under AddressSanitizer the model runs several times slower: half as many requests keep the
// test within its three-minute timeout.
#ifdef __SANITIZE_ADDRESS__
constexpr int kDefaultRequests = 1000;
#else
constexpr int kDefaultRequests = 2000;
#endif
constexpr int64_t kMaxRequestBytes = 64 << 10;
constexpr auto kIssueFor = std::chrono::seconds(150);

enum class Kind { Plain, Streamed, Image, Malformed, Oversized, Slow, Stalled, Cancelled };
const char* kind_name(Kind k) {
  static const char* names[] = {"plain",     "streamed", "image",   "malformed",
                                "oversized", "slow",     "stalled", "cancelled"};
  return names[int(k)];
}

Kind kind_of(int i) {
  switch (i % 20) {
    case 3:
      return Kind::Malformed;
    case 7:
      return Kind::Oversized;
    case 11:
      return (i / 20) % 5 == 0 ? Kind::Stalled : Kind::Slow;
    case 15:
      return Kind::Cancelled;
    default:
      return i % 3 == 0 ? Kind::Streamed : i % 3 == 1 ? Kind::Plain : Kind::Image;
  }
}

std::string png_data_url() {
  std::ifstream in(kFixtures + "/images/tiny_27x27.png", std::ios::binary);
  const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint8_t(bytes[i]) << 16 | uint8_t(bytes[i + 1]) << 8 | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += a[(v >> s) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += std::string{a[v >> 18], a[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16 | uint8_t(bytes[i + 1]) << 8;
    out += std::string{a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '='};
  }
  return "data:image/png;base64," + out;
}

json request_body(Kind kind, bool stream) {
  json body = {{"messages", json::array({{{"role", "user"}, {"content", "Tell me a story"}}})},
               {"max_tokens", 8},
               {"ignore_eos", true}};
  if (kind == Kind::Image)
    body["messages"][0]["content"] =
        json::array({{{"type", "image_url"}, {"image_url", {{"url", png_data_url()}}}},
                     {{"type", "text"}, {"text", "What is this?"}}});
  if (stream) body["stream"] = true;
  return body;
}

// The text of a streamed answer's deltas; "" unless it ends with [DONE].
std::string streamed_text(const std::string& body) {
  std::string text;
  size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const size_t end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") return text;
    const json chunk = json::parse(data);
    if (!chunk["choices"].empty() && chunk["choices"][0]["delta"].contains("content"))
      text += chunk["choices"][0]["delta"]["content"].get<std::string>();
  }
  return "";
}

int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  timeval timeout = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

// A client on a raw socket that sends the headers whole and the body a byte at a time; with
// `stall` it stops halfway and waits for the server to give up on it. Returns what the server
// sent before closing (empty: closed without a word).
std::string slow_request(int port, const std::string& body, bool stall) {
  const int fd = connect_loopback(port);
  if (fd < 0) return "connect failed";
  const std::string head =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/json\r\nConnection: close\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  const size_t bytes = stall ? body.size() / 2 : body.size();
  for (size_t i = 0; i < bytes; ++i) {
    if (send(fd, body.data() + i, 1, MSG_NOSIGNAL) != 1) break;
    std::this_thread::sleep_for(200us);
  }
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = recv(fd, buffer, sizeof buffer, 0)) > 0;) reply.append(buffer, size_t(n));
  close(fd);
  return reply;
}

class ServeProcess {
 public:
  ServeProcess() {
    int out[2];
    if (pipe(out) != 0) return;
    const std::string model = kFixtures + "/models/tiny-tied";
    const std::string max_bytes = std::to_string(kMaxRequestBytes);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      close(out[0]);
      execl(QWENVL_BINARY, "qwenvl", "serve", "--model", model.c_str(), "--device", "cpu", "--port",
            "0", "--max-context", "2048", "--max-request-bytes", max_bytes.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
    char line[512];
    while (port_ == 0 && stdout_ && std::fgets(line, sizeof line, stdout_)) {
      const std::string text = line;
      const size_t at = text.find("http://127.0.0.1:");
      if (at != std::string::npos) port_ = std::stoi(text.substr(at + 17));
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && !stopped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_) std::fclose(stdout_);
  }
  int port() const { return port_; }
  bool alive() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  int stop() {  // SIGTERM; the exit status, or -1 when it did not exit normally
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    stopped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* stdout_ = nullptr;
  int port_ = 0;
  bool stopped_ = false;
};

int64_t metric(httplib::Client& client, const std::string& name) {
  const auto res = client.Get("/metrics");
  if (!res) return -1;
  const std::string key = "\n" + name + " ";
  const size_t at = res->body.find(key);
  return at == std::string::npos ? -1 : std::stoll(res->body.substr(at + key.size()));
}

TEST(ServerFaults, StaysUpAndAnswersEveryWellFormedRequest) {
  const char* env = std::getenv("QWENVL_FAULT_REQUESTS");
  const int requests = env ? std::atoi(env) : kDefaultRequests;
  ServeProcess server;
  ASSERT_GT(server.port(), 0) << "qwenvl serve printed no URL";
  const int port = server.port();
  const auto start = std::chrono::steady_clock::now();

  // The answers of the idle server, which every later well-formed request must repeat.
  std::map<Kind, std::string> expected;
  {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(60, 0);
    for (Kind k : {Kind::Plain, Kind::Image}) {
      const auto res =
          client.Post("/v1/chat/completions", request_body(k, false).dump(), "application/json");
      ASSERT_TRUE(res && res->status == 200) << kind_name(k);
      expected[k] = json::parse(res->body)["choices"][0]["message"]["content"];
    }
    expected[Kind::Streamed] = expected[Kind::Slow] = expected[Kind::Plain];
  }
  const std::string oversized =
      json{{"messages",
            json::array({{{"role", "user"}, {"content", std::string(kMaxRequestBytes, 'a')}}})}}
          .dump();

  // The test is bounded in time too: past this, no new request starts (and the run says so).
  const auto stop_issuing = start + kIssueFor;
  std::atomic<bool> out_of_time{false};
  std::atomic<int> next{0};
  std::mutex mutex;
  std::map<std::string, int> counts;
  std::vector<std::string> failures;
  auto record = [&](Kind kind, int i, bool ok, const std::string& detail) {
    std::lock_guard lock(mutex);
    ++counts[kind_name(kind)];
    if (!ok && failures.size() < 20)
      failures.push_back(std::string(kind_name(kind)) + " #" + std::to_string(i) + ": " + detail);
  };
  auto client_loop = [&] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(60, 0);
    for (int i; (i = next.fetch_add(1)) < requests;) {
      if (std::chrono::steady_clock::now() > stop_issuing) {
        out_of_time = true;
        break;
      }
      const Kind kind = kind_of(i);
      switch (kind) {
        case Kind::Plain:
        case Kind::Image: {
          const auto res = client.Post("/v1/chat/completions", request_body(kind, false).dump(),
                                       "application/json");
          const bool ok =
              res && res->status == 200 &&
              json::parse(res->body)["choices"][0]["message"]["content"] == expected[kind];
          record(kind, i, ok, res ? res->body.substr(0, 200) : "no response");
          break;
        }
        case Kind::Streamed: {
          const auto res = client.Post("/v1/chat/completions", request_body(kind, true).dump(),
                                       "application/json");
          const bool ok = res && res->status == 200 && streamed_text(res->body) == expected[kind];
          record(kind, i, ok, res ? res->body.substr(0, 200) : "no response");
          break;
        }
        case Kind::Malformed: {
          const std::string body = request_body(Kind::Plain, false).dump();
          const auto res = client.Post("/v1/chat/completions", body.substr(0, body.size() / 2),
                                       "application/json");
          record(kind, i, res && res->status == 400, res ? res->body : "no response");
          break;
        }
        case Kind::Oversized: {
          const auto res = client.Post("/v1/chat/completions", oversized, "application/json");
          record(kind, i, res && res->status == 413, res ? res->body : "no response");
          break;
        }
        case Kind::Slow: {
          const std::string reply =
              slow_request(port, request_body(Kind::Plain, false).dump(), false);
          const size_t body = reply.find("\r\n\r\n");
          const bool ok = reply.rfind("HTTP/1.1 200", 0) == 0 && body != std::string::npos &&
                          json::parse(reply.substr(body + 4), nullptr,
                                      false)["choices"][0]["message"]["content"] == expected[kind];
          record(kind, i, ok, reply.substr(0, 200));
          break;
        }
        case Kind::Stalled: {
          // httplib's read timeout (5 s) drops it: a closed socket, or a 4xx first.
          const auto t0 = std::chrono::steady_clock::now();
          const std::string reply =
              slow_request(port, request_body(Kind::Plain, false).dump(), true);
          const bool ok = (reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0) &&
                          std::chrono::steady_clock::now() - t0 < 20s;
          record(kind, i, ok, reply.substr(0, 200));
          break;
        }
        case Kind::Cancelled: {
          json body = request_body(Kind::Plain, true);
          body["max_tokens"] = 1500;
          httplib::Request request;
          request.method = "POST";
          request.path = "/v1/chat/completions";
          request.headers = {{"Content-Type", "application/json"}};
          request.body = body.dump();
          int chunks = 0;
          request.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
            return ++chunks < 3;
          };
          httplib::Response response;
          httplib::Error error = httplib::Error::Success;
          httplib::Client leaving("127.0.0.1", port);
          leaving.send(request, response, error);
          record(kind, i, chunks == 3, "chunks " + std::to_string(chunks));
          break;
        }
      }
    }
  };
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) clients.emplace_back(client_loop);
  for (std::thread& t : clients) t.join();

  for (const std::string& f : failures) ADD_FAILURE() << f;
  ASSERT_TRUE(server.alive()) << "the server died";
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  for (int i = 0; i < 400 && (metric(client, "qwenvl_running_sequences") != 0 ||
                              metric(client, "qwenvl_queue_depth") != 0 ||
                              metric(client, "qwenvl_kv_blocks_used") != 0);
       ++i)
    std::this_thread::sleep_for(25ms);
  EXPECT_EQ(metric(client, "qwenvl_running_sequences"), 0);
  EXPECT_EQ(metric(client, "qwenvl_queue_depth"), 0);
  EXPECT_EQ(metric(client, "qwenvl_kv_blocks_used"), 0) << "blocks left behind";
  EXPECT_GT(metric(client, "qwenvl_kv_blocks_free"), 0);
  const auto last = client.Post("/v1/chat/completions", request_body(Kind::Plain, false).dump(),
                                "application/json");
  ASSERT_TRUE(last && last->status == 200);
  EXPECT_EQ(json::parse(last->body)["choices"][0]["message"]["content"], expected[Kind::Plain]);
  EXPECT_EQ(server.stop(), 0);

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int sent = 0;
  for (const auto& entry : counts) sent += entry.second;
  if (out_of_time) std::printf("  out of time: %d of %d requests sent\n", sent, requests);
  std::printf("  %d requests in %.1f s:", sent, seconds);
  for (const auto& [name, count] : counts) std::printf(" %s %d", name.c_str(), count);
  std::printf("\n");
}

}  // namespace
