#pragma once
// Runs chat completions on one loaded model. Requests wait in a bounded queue and one worker
// thread takes them in order, builds each prompt (runtime/chat_request: images sized from their
// headers, the context checked, then decoded) and generates it; the HTTP threads never touch the
// model. A model built for several sequences (ModelLimits::max_sequences) runs them together
// (runtime/batch_runner: continuous batching over a paged KV cache), the worker taking new
// requests between passes; one built for one runs each alone through the one-sequence generator
// and its captured decode steps.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "model/qwen2_5_vl.h"
#include "runtime/batch_runner.h"
#include "server/job.h"
#include "server/metrics.h"
#include "text/tokenizer.h"

namespace qwenvl {

class Engine {
 public:
  // `limits`: those the model was built with (requests beyond them are refused). max_queue:
  // requests that may wait besides the one running.
  // caches: those of continuous batching (max_sequences > 1).
  Engine(Qwen25VL& model, const Tokenizer& tokenizer, const ModelLimits& limits,
         ServerMetrics& metrics, size_t max_queue, BatchCaches caches = {});
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The queued job, or nullptr when the queue is full (the caller answers 503).
  std::shared_ptr<Job> submit(CompletionRequest request);
  // While held, the worker starts no new request (what runs finishes); requests still queue.
  // For draining a server by hand, and for tests that need a full queue.
  void hold(bool on);
  // Cancels the running and waiting jobs (waiting ones fail as unavailable) and joins the worker.
  void stop();

 private:
  void work();
  void run(Job& job);
  void work_batched();
  // Builds the job's prompt and hands it to the runner; a job that cannot run fails here.
  void start_batched(const std::shared_ptr<Job>& job, BatchRunner& runner);

  Qwen25VL& model_;
  const Tokenizer& tokenizer_;
  const ModelLimits limits_;
  ServerMetrics& metrics_;
  const size_t max_queue_;
  const BatchCaches caches_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::shared_ptr<Job> running_;
  bool stopping_ = false;
  bool held_ = false;
  std::thread worker_;
};

}  // namespace qwenvl
