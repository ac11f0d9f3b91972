#pragma once
// A server on the tiny fixture model, on the CPU and a free loopback port, with the helpers its
// tests drive it with over HTTP (httplib's client), and an image server on loopback that the
// server may fetch from (the fetcher's test-only loopback override).
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "server/engine.h"
#include "server/http_server.h"
#include "server/served_model.h"

namespace qwenvl {
namespace {

using nlohmann::json;

const std::string kModelDir = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";
const std::string kImageDir = std::string(QWENVL_FIXTURES_DIR) + "/images";
constexpr const char* kKey = "test-key";

inline std::string base64(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint8_t(bytes[i]) << 16 | uint8_t(bytes[i + 1]) << 8 | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += alphabet[(v >> s) & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += cat(alphabet[v >> 18], alphabet[(v >> 12) & 63], "==");
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16 | uint8_t(bytes[i + 1]) << 8;
    out += cat(alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63], "=");
  }
  return out;
}

inline std::string data_url(const std::string& file) {
  std::ifstream in(kImageDir + "/" + file, std::ios::binary);
  return "data:image/png;base64," +
         base64(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
}

inline json image_message(const std::string& url, json extra = json::object()) {
  json part = {{"type", "image_url"}, {"image_url", {{"url", url}}}};
  part.update(extra);
  return {{"role", "user"},
          {"content", json::array({part, {{"type", "text"}, {"text", "What is this?"}}})}};
}

class ServerFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServeOptions options;
    options.model_dir = kModelDir;
    options.device = "cpu";
    options.max_context = 4096;
    options.max_pixels = 256 * 28 * 28;
    options.allowed_media_dir = kImageDir;
    options.max_sequences = 4;  // continuous batching; serve_command_test runs one at a time
    served_ = load_served_model(options).release();
    // Remote images from the image server below, on loopback: only the tests' override lets
    // the fetcher connect there.
    RemoteMediaOptions remote;
    remote.domains = MediaDomains::parse("127.0.0.1");
    remote.timeout = std::chrono::milliseconds(5000);
    served_->defaults.media.remote =
        std::make_shared<RemoteMediaFetcher>(remote, LoopbackForTests::kAllowed);
    images_ = new httplib::Server();
    images_->set_mount_point("/images", kImageDir);
    image_port_ = images_->bind_to_any_port("127.0.0.1");
    image_thread_ = new std::thread([] { images_->listen_after_bind(); });
    // httplib's stop() before the loop runs is lost, and the join would wait forever.
    while (!images_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    metrics_ = new ServerMetrics();
    BatchCaches caches;  // serve's defaults: both caches on
    caches.image_bytes = 16 << 20;
    caches.prefix = true;
    engine_ = new Engine(*served_->model, served_->files.tokenizer, served_->limits, *metrics_, 2,
                         caches);
    HttpOptions http;
    http.model_name = served_->name;
    http.api_key = kKey;
    http.max_request_bytes = 1 << 20;
    http.max_queue = 2;
    server_ = new HttpServer(*engine_, *metrics_, served_->defaults, http);
    port_ = server_->bind("127.0.0.1", 0);
    thread_ = new std::thread([] { server_->run(); });
    while (!server_->listening()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  static void TearDownTestSuite() {
    engine_->stop();
    server_->stop();
    thread_->join();
    images_->stop();
    image_thread_->join();
    delete image_thread_;
    delete images_;
    delete thread_;
    delete server_;
    delete engine_;
    delete metrics_;
    delete served_;
  }

  static httplib::Client client(bool with_key = true) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    if (with_key) c.set_bearer_token_auth(kKey);
    return c;
  }
  static httplib::Result post(const json& body, bool with_key = true) {
    return client(with_key).Post("/v1/chat/completions", body.dump(), "application/json");
  }
  static json hello(int max_tokens = 4) {
    return {{"messages", json::array({{{"role", "user"}, {"content", "Hello"}}})},
            {"max_tokens", max_tokens}};
  }
  // An OpenAI error body with this status, param and a message.
  static void expect_error(const httplib::Result& res, int status, const std::string& param = "") {
    ASSERT_TRUE(res) << "no response";
    EXPECT_EQ(res->status, status) << res->body;
    const json body = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.contains("error")) << res->body;
    EXPECT_FALSE(body["error"]["message"].get<std::string>().empty());
    EXPECT_EQ(body["error"]["code"], status);
    if (!param.empty()) {
      EXPECT_EQ(body["error"]["param"], param);
    }
  }
  // The server still completes a request.
  static void expect_serving() {
    const auto res = post(hello(2));
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << res->body;
  }

  // A gauge or counter of /metrics.
  static int64_t metric(const std::string& name) {
    const std::string text = client().Get("/metrics")->body;
    const std::string key = "\n" + name + " ";
    const size_t at = text.find(key);
    return at == std::string::npos ? -1 : std::stoll(text.substr(at + key.size()));
  }
  static void wait_for_metric(const std::string& name, int64_t value) {
    for (int i = 0; i < 2000 && metric(name) != value; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_EQ(metric(name), value) << name;
  }

  static inline ServedModel* served_ = nullptr;
  static inline ServerMetrics* metrics_ = nullptr;
  static inline Engine* engine_ = nullptr;
  static inline HttpServer* server_ = nullptr;
  static inline std::thread* thread_ = nullptr;
  static inline int port_ = 0;
  static inline httplib::Server* images_ = nullptr;
  static inline std::thread* image_thread_ = nullptr;
  static inline int image_port_ = 0;
};

}  // namespace
}  // namespace qwenvl
