#pragma once
// Runs chat completions on one loaded model. Requests wait in a bounded queue and one worker
// thread takes them in order, builds each prompt (runtime/chat_request: images sized from their
// headers, the context checked, then decoded) and generates it; the HTTP threads never touch the
// model. A model built for several sequences (ModelLimits::max_sequences) runs them together
// (runtime/batch_runner: continuous batching over a paged KV cache), the worker taking new
// requests between passes; there, two preparer threads build the prompts (decoding images takes
// milliseconds that every running stream would otherwise wait for), no more at a time than the
// runner can start soon. One built for one sequence runs each request alone through the
// one-sequence generator and its captured decode steps.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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
  // A job whose prompt is built, waiting for the runner.
  struct Prepared {
    std::shared_ptr<Job> job;
    GenerationRequest generation;
    int64_t prompt_tokens = 0;
  };
  // A preparer thread: builds the prompts of queued jobs into ready_; a job that cannot run
  // fails here.
  void prepare_jobs();
  // Hands a prepared job to the runner.
  void start_batched(Prepared& prepared, BatchRunner& runner);

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
  std::deque<Prepared> ready_;  // batched: prepared, not yet in the runner
  int preparing_ = 0;           // jobs the preparers hold
  int runner_load_ = 0;         // the runner's running and waiting sequences, after its last pass
  bool stopping_ = false;
  bool held_ = false;
  std::vector<std::thread> preparers_;
  std::thread worker_;
};

}  // namespace qwenvl
