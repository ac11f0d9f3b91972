#pragma once
// The HTTP edge (cpp-httplib): routes, bearer-key check, body size limit, and the mapping of
// qwenvl::Error categories to HTTP statuses and OpenAI's error JSON. Requests are parsed here
// and handed to the Engine; responses wait on their Job, streamed ones as server-sent events.
#include <cstdint>
#include <memory>
#include <string>

#include "server/engine.h"
#include "server/metrics.h"
#include "server/openai_request.h"

namespace httplib {
class Server;
}

namespace qwenvl {

struct HttpOptions {
  std::string model_name;                         // what /v1/models lists and responses carry
  std::string api_key;                            // empty: no authentication
  int64_t max_request_bytes = int64_t(64) << 20;  // base64 images are large
  size_t max_queue = 64;                          // requests waiting beside the running one
};

class HttpServer {
 public:
  HttpServer(Engine& engine, ServerMetrics& metrics, const RequestDefaults& defaults,
             HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0: any free port); returns the port. Error when it cannot bind.
  int bind(const std::string& host, int port);
  // Serves until stop(); call after bind.
  void run();
  void stop();  // from any thread, a signal handler's thread included
  // Whether run() listens: a stop() that comes before then is lost, so a caller that starts run()
  // on a thread and may stop it at once (tests) waits for this first.
  bool listening() const;

 private:
  void install_routes();

  Engine& engine_;
  ServerMetrics& metrics_;
  const RequestDefaults defaults_;
  const HttpOptions options_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace qwenvl
