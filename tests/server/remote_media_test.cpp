// The remote image fetcher against an httplib server on 127.0.0.1: loopback is refused as any
// client would find it, and with the tests' override the allow-list, redirects (each checked
// again), the size cap, the deadline and failed statuses are exercised.
#include "server/remote_media.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <thread>

#include "core/error.h"

namespace qwenvl {
namespace {

using namespace std::chrono_literals;

class RemoteMedia : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new httplib::Server();
    server_->Get("/image.png", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kBody, "image/png");
    });
    server_->Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(5000, 'x'), "image/png");
    });
    server_->Get("/big-chunked", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("image/png", [](size_t, httplib::DataSink& sink) {
        const std::string piece(1000, 'x');
        for (int i = 0; i < 5; ++i) sink.write(piece.data(), piece.size());
        sink.done();
        return true;
      });
    });
    server_->Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(1500ms);
      res.set_content(kBody, "image/png");
    });
    server_->Get("/missing",
                 [](const httplib::Request&, httplib::Response& res) { res.status = 404; });
    server_->Get(R"(/redirect/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
      const int n = std::stoi(req.matches[1]);
      res.set_redirect(n == 0 ? "/image.png" : "/redirect/" + std::to_string(n - 1));
    });
    server_->Get("/to-localhost", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("http://localhost:" + std::to_string(port_) + "/image.png");
    });
    server_->Get("/to-private", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("http://10.0.0.1/image.png");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = new std::thread([] { server_->listen_after_bind(); });
    // httplib's stop() before the loop runs is lost, and the join would wait forever.
    while (!server_->is_running()) std::this_thread::sleep_for(1ms);
  }
  static void TearDownTestSuite() {
    server_->stop();
    thread_->join();
    delete thread_;
    delete server_;
  }

  static std::string url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  static RemoteMediaFetcher fetcher(const std::string& domains,
                                    LoopbackForTests loopback = LoopbackForTests::kAllowed) {
    RemoteMediaOptions options;
    options.domains = MediaDomains::parse(domains);
    options.max_bytes = 4096;
    options.timeout = 1000ms;
    options.max_redirects = 3;
    return RemoteMediaFetcher(options, loopback);
  }
  // The message of the Error fetch throws, or "" if it fetched.
  static std::string refusal(const RemoteMediaFetcher& f, const std::string& u) {
    try {
      f.fetch(u, "image 1");
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::BadInput);
      return e.what();
    }
    return "";
  }

  static constexpr const char* kBody = "\x89PNG not really";
  static inline httplib::Server* server_ = nullptr;
  static inline std::thread* thread_ = nullptr;
  static inline int port_ = 0;
};

TEST_F(RemoteMedia, RefusesLoopbackWithoutTheTestsOverride) {
  const RemoteMediaFetcher f = fetcher("127.0.0.1,localhost", LoopbackForTests::kRefused);
  EXPECT_NE(refusal(f, url("/image.png")).find("loopback"), std::string::npos);
  const std::string named = "http://localhost:" + std::to_string(port_) + "/image.png";
  EXPECT_NE(refusal(f, named).find("loopback"), std::string::npos);
  const RemoteMediaFetcher mapped = fetcher("::ffff:127.0.0.1");
  EXPECT_NE(refusal(mapped, "http://[::ffff:127.0.0.1]:1/x").find("loopback"), std::string::npos);
}

TEST_F(RemoteMedia, FetchesFromAllowedHostsOnly) {
  EXPECT_EQ(fetcher("127.0.0.1").fetch(url("/image.png"), "image 1"), kBody);
  EXPECT_NE(refusal(fetcher("example.com"), url("/image.png")).find("--allowed-media-domains"),
            std::string::npos);
  // Disguises of the host are refused before any lookup.
  EXPECT_NE(refusal(fetcher("127.0.0.1"), "http://example.com@127.0.0.1/x").find("user"),
            std::string::npos);
  EXPECT_NE(refusal(fetcher("127.0.0.1"), "http://127.0.0.1:99999/x").find("port"),
            std::string::npos);
  EXPECT_NE(refusal(fetcher("127.0.0.1"), "ftp://127.0.0.1/x").find("http"), std::string::npos);
}

TEST_F(RemoteMedia, FollowsAFewRedirectsCheckingEach) {
  // /redirect/N answers N + 1 redirects.
  EXPECT_EQ(fetcher("127.0.0.1").fetch(url("/redirect/2"), "image 1"), kBody);
  EXPECT_NE(refusal(fetcher("127.0.0.1"), url("/redirect/3")).find("redirected more"),
            std::string::npos);
  // A redirect to a host off the list, or to a private address on it, is refused.
  EXPECT_NE(refusal(fetcher("127.0.0.1"), url("/to-localhost")).find("not in the server"),
            std::string::npos);
  EXPECT_NE(refusal(fetcher("127.0.0.1,10.0.0.1"), url("/to-private")).find("private"),
            std::string::npos);
}

TEST_F(RemoteMedia, CapsTheSizeAndTheTime) {
  EXPECT_NE(refusal(fetcher("127.0.0.1"), url("/big")).find("larger than 4096"), std::string::npos);
  EXPECT_NE(refusal(fetcher("127.0.0.1"), url("/big-chunked")).find("larger than 4096"),
            std::string::npos);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(refusal(fetcher("127.0.0.1"), url("/slow")).find("time"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1400ms);
  EXPECT_NE(refusal(fetcher("127.0.0.1"), url("/missing")).find("status 404"), std::string::npos);
}

}  // namespace
}  // namespace qwenvl
