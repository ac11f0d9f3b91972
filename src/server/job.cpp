#include "server/job.h"

namespace qwenvl {

void Job::start(int64_t prompt_tokens, int64_t image_tokens) {
  std::lock_guard lock(mutex_);
  state_ = JobState::Running;
  usage_.prompt_tokens = prompt_tokens;
  usage_.image_tokens = image_tokens;
  changed_.notify_all();
}

void Job::append(const std::string& text) {
  std::lock_guard lock(mutex_);
  text_ += text;
  changed_.notify_all();
}

void Job::append_logprob(LogprobEntry entry) {
  std::lock_guard lock(mutex_);
  logprobs_.push_back(std::move(entry));
  changed_.notify_all();
}

void Job::finish(const std::string& finish_reason, int64_t completion_tokens) {
  std::lock_guard lock(mutex_);
  state_ = JobState::Finished;
  finish_reason_ = finish_reason;
  usage_.completion_tokens = completion_tokens;
  changed_.notify_all();
}

void Job::fail(ErrorKind kind, const std::string& message, const std::string& param) {
  std::lock_guard lock(mutex_);
  state_ = JobState::Failed;
  error_kind_ = kind;
  error_ = message;
  error_param_ = param;
  changed_.notify_all();
}

JobSnapshot Job::wait(JobCursor& cursor, JobState seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] {
    return text_.size() > cursor.text || logprobs_.size() > cursor.logprobs || state_ != seen;
  });
  JobSnapshot out;
  out.state = state_;
  out.new_text = text_.substr(std::min(cursor.text, text_.size()));
  cursor.text = text_.size();
  out.new_logprobs.assign(
      logprobs_.begin() + ptrdiff_t(std::min(cursor.logprobs, logprobs_.size())), logprobs_.end());
  cursor.logprobs = logprobs_.size();
  out.usage = usage_;
  out.finish_reason = finish_reason_;
  out.error_kind = error_kind_;
  out.error = error_;
  out.error_param = error_param_;
  return out;
}

}  // namespace qwenvl
