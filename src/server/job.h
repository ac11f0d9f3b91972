#pragma once
// One chat completion between the HTTP thread that received it and the worker that runs it: the
// worker appends text and ends it (finished or failed); the HTTP thread waits for what is new
// and may cancel it (its client went away). Thread-safe.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "server/openai_request.h"
#include "server/openai_response.h"

namespace qwenvl {

enum class JobState { Queued, Running, Finished, Failed };

// How far the HTTP side has read a job's output.
struct JobCursor {
  size_t text = 0;
  size_t logprobs = 0;
};

struct JobSnapshot {
  JobState state = JobState::Queued;
  std::string new_text;                    // since the cursor
  std::vector<LogprobEntry> new_logprobs;  // since the cursor (requests that ask for logprobs)
  Usage usage;  // prompt figures once running, completion tokens once finished
  std::string finish_reason;
  ErrorKind error_kind = ErrorKind::Internal;
  std::string error;  // when failed
  std::string error_param;
};

class Job {
 public:
  explicit Job(CompletionRequest request)
      : request(std::move(request)), arrived(std::chrono::steady_clock::now()) {}

  CompletionRequest request;
  const std::chrono::steady_clock::time_point arrived;

  // The worker's side.
  void start(int64_t prompt_tokens, int64_t image_tokens);
  void append(const std::string& text);
  void append_logprob(LogprobEntry entry);
  void finish(const std::string& finish_reason, int64_t completion_tokens);
  void fail(ErrorKind kind, const std::string& message, const std::string& param = "");

  // The HTTP side: waits until there is output past `cursor`, the state moves past `seen`, or
  // `timeout` passes, then advances `cursor` past the output returned.
  JobSnapshot wait(JobCursor& cursor, JobState seen, std::chrono::milliseconds timeout);
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  JobState state_ = JobState::Queued;
  std::string text_;
  std::vector<LogprobEntry> logprobs_;
  Usage usage_;
  std::string finish_reason_;
  ErrorKind error_kind_ = ErrorKind::Internal;
  std::string error_, error_param_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace qwenvl
