#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "server/openai_response.h"

namespace qwenvl {

namespace {

using namespace std::chrono_literals;

// How often a streaming response, while it waits for tokens, checks that its client is there.
constexpr auto kStreamPoll = 100ms;
// Threads that serve connections beside the queue's waiting requests (health, metrics, refusals).
constexpr size_t kSpareHttpThreads = 8;

struct ErrorStatus {
  int status;
  const char* type;
};

// qwenvl::Error categories as HTTP statuses: a user's mistake is theirs to fix (400); a
// memory budget that cannot hold the request is the server's present limit (503); a lost
// device or a bug is the server's failure (500).
ErrorStatus error_status(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::BadInput:
      return {400, "invalid_request_error"};
    case ErrorKind::ResourceLimit:
      return {503, "service_unavailable"};
    case ErrorKind::Device:
      return {500, "server_error"};
    case ErrorKind::Internal:
      break;
  }
  return {500, "internal_server_error"};
}

void send_error(httplib::Response& res, int status, const std::string& type,
                const std::string& message, const std::string& param = "") {
  res.status = status;
  res.set_content(error_json(message, type, param, status), "application/json");
}

void send_error(httplib::Response& res, ErrorKind kind, const std::string& message,
                const std::string& param = "") {
  const ErrorStatus s = error_status(kind);
  send_error(res, s.status, s.type, message, param);
}

std::string completion_id() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  return cat("chatcmpl-", std::hex, salt, counter.fetch_add(1));
}

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Blocks until the job leaves `seen` (or has output), returning what is new.
JobSnapshot wait_past(Job& job, JobCursor& cursor, JobState seen) {
  for (;;) {
    JobSnapshot s = job.wait(cursor, seen, 1000ms);
    if (s.state != seen || !s.new_text.empty() || !s.new_logprobs.empty()) return s;
  }
}

void answer_whole(Job& job, const CompletionIdentity& identity, httplib::Response& res) {
  JobCursor cursor;
  std::string text;
  std::vector<LogprobEntry> logprobs;
  JobSnapshot s;
  for (JobState seen = JobState::Queued;; seen = s.state) {
    s = job.wait(cursor, seen, 1000ms);
    text += s.new_text;
    logprobs.insert(logprobs.end(), s.new_logprobs.begin(), s.new_logprobs.end());
    if (s.state == JobState::Finished || s.state == JobState::Failed) break;
  }
  if (s.state == JobState::Failed) return send_error(res, s.error_kind, s.error, s.error_param);
  const bool with_logprobs = job.request.logprobs;
  res.set_content(completion_json(identity, text, s.finish_reason, s.usage,
                                  with_logprobs ? &logprobs : nullptr),
                  "application/json");
}

// Server-sent events: a role chunk, a chunk per piece of text (with its tokens' logprobs when
// asked), the finish chunk, the usage chunk when asked, then [DONE]. A failed write or a socket
// no longer writable is a client gone: the job is cancelled and stops at its next token.
bool write_events(Job& job, const CompletionIdentity& identity, httplib::DataSink& sink) {
  auto send = [&](const std::string& data) {
    if (!sink.is_writable() || !sink.write(data.data(), data.size())) {
      job.cancel();
      return false;
    }
    return true;
  };
  if (!send(sse_role_chunk(identity))) return false;
  const bool with_logprobs = job.request.logprobs;
  JobCursor cursor;
  for (;;) {
    const JobSnapshot s = job.wait(cursor, JobState::Running, kStreamPoll);
    const bool news = !s.new_text.empty() || !s.new_logprobs.empty();
    if (news &&
        !send(sse_text_chunk(identity, s.new_text, with_logprobs ? &s.new_logprobs : nullptr)))
      return false;
    if (s.state == JobState::Failed) {
      send(sse_error(s.error, error_status(s.error_kind).type));
      break;
    }
    if (s.state == JobState::Finished) {
      if (!send(sse_finish_chunk(identity, s.finish_reason))) return false;
      if (job.request.include_usage && !send(sse_usage_chunk(identity, s.usage))) return false;
      break;
    }
    if (!news && !sink.is_writable()) {
      job.cancel();
      return false;
    }
  }
  if (!send(kSseDone)) return false;
  sink.done();
  return true;
}

void answer_stream(std::shared_ptr<Job> job, const CompletionIdentity& identity,
                   httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream",
                                   [job, identity](size_t, httplib::DataSink& sink) {
                                     return write_events(*job, identity, sink);
                                   });
}

}  // namespace

HttpServer::HttpServer(Engine& engine, ServerMetrics& metrics, const RequestDefaults& defaults,
                       HttpOptions options)
    : engine_(engine),
      metrics_(metrics),
      defaults_(defaults),
      options_(std::move(options)),
      server_(std::make_unique<httplib::Server>()) {
  const size_t threads = options_.max_queue + kSpareHttpThreads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(size_t(options_.max_request_bytes));
  install_routes();
}

HttpServer::~HttpServer() = default;

int HttpServer::bind(const std::string& host, int port) {
  const int bound = port == 0                           ? server_->bind_to_any_port(host)
                    : server_->bind_to_port(host, port) ? port
                                                        : -1;
  if (bound <= 0) fail("cannot listen on ", host, ":", port, " (in use, or not an address here)");
  return bound;
}

void HttpServer::run() { server_->listen_after_bind(); }

void HttpServer::stop() { server_->stop(); }

bool HttpServer::listening() const { return server_->is_running(); }

void HttpServer::install_routes() {
  httplib::Server& server = *server_;
  // The key guards the API; /health and /metrics stay open for probes and scrapers.
  server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.api_key.empty() || req.path.rfind("/v1/", 0) != 0)
      return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + options_.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, 401, "authentication_error",
               "a valid API key is required: send 'Authorization: Bearer KEY'");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Statuses httplib answers itself (404, 413 over --max-request-bytes, 400 for a malformed
  // request line) get OpenAI's error body too.
  server.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        if (res.status == 413)
          send_error(res, 413, "invalid_request_error",
                     "the request body is larger than this server's --max-request-bytes");
        else if (res.status == 404)
          send_error(res, 404, "not_found_error", cat("no route for ", req.method, " ", req.path));
        else
          send_error(res, res.status, "invalid_request_error", "the HTTP request was not accepted");
        return httplib::Server::HandlerResponse::Handled;
      }));
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        send_error(res, 500, "internal_server_error", "the request failed inside the server");
      });
  server.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    metrics_.count_response(res.status);
  });

  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.prometheus(), "text/plain; version=0.0.4");
  });
  server.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const nlohmann::json body = {{"object", "list"},
                                 {"data",
                                  {{{"id", options_.model_name},
                                    {"object", "model"},
                                    {"owned_by", "qwenvl"},
                                    {"max_model_len", defaults_.max_context}}}}};
    res.set_content(body.dump(), "application/json");
  });
  server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<Job> job;
    try {
      job = engine_.submit(parse_completion_request(req.body, defaults_));
    } catch (const ParamError& e) {
      return send_error(res, e.kind(), e.what(), e.param());
    } catch (const Error& e) {
      return send_error(res, e.kind(), e.what());
    } catch (const std::bad_alloc&) {
      return send_error(res, ErrorKind::ResourceLimit, "out of memory reading the request");
    }
    if (!job) {
      res.set_header("Retry-After", "1");
      return send_error(res, 503, "service_unavailable",
                        "the server's request queue is full; retry shortly");
    }
    const CompletionIdentity identity{completion_id(), options_.model_name, unix_seconds()};
    if (!job->request.stream) return answer_whole(*job, identity, res);
    // The status goes out before the first event: wait until the prompt is built, so a prompt
    // the worker refuses (an image it cannot decode, a context overrun) is still a 400.
    JobCursor cursor;
    const JobSnapshot s = wait_past(*job, cursor, JobState::Queued);
    if (s.state == JobState::Failed) return send_error(res, s.error_kind, s.error, s.error_param);
    answer_stream(job, identity, res);
  });
}

}  // namespace qwenvl
