#include "server/engine.h"

#include <new>

#include "runtime/chat_request.h"
#include "runtime/generator.h"

namespace qwenvl {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace

Engine::Engine(Qwen25VL& model, const Tokenizer& tokenizer, const ModelLimits& limits,
               ServerMetrics& metrics, size_t max_queue)
    : model_(model),
      tokenizer_(tokenizer),
      limits_(limits),
      metrics_(metrics),
      max_queue_(max_queue),
      worker_([this] { work(); }) {}

Engine::~Engine() { stop(); }

std::shared_ptr<Job> Engine::submit(CompletionRequest request) {
  std::lock_guard lock(mutex_);
  if (stopping_ || queue_.size() >= max_queue_) return nullptr;
  auto job = std::make_shared<Job>(std::move(request));
  queue_.push_back(job);
  metrics_.queue_depth.store(int64_t(queue_.size()));
  wake_.notify_one();
  return job;
}

void Engine::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
    for (const auto& job : queue_)
      job->fail(ErrorKind::ResourceLimit, "the server is shutting down");
    queue_.clear();
    metrics_.queue_depth.store(0);
    if (running_) running_->cancel();
    wake_.notify_all();
  }
  if (worker_.joinable()) worker_.join();
}

void Engine::hold(bool on) {
  std::lock_guard lock(mutex_);
  held_ = on;
  wake_.notify_all();
}

void Engine::work() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || (!held_ && !queue_.empty()); });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      running_ = job;
      metrics_.queue_depth.store(int64_t(queue_.size()));
    }
    metrics_.running_sequences.store(1);
    run(*job);
    metrics_.running_sequences.store(0);
    std::lock_guard lock(mutex_);
    running_.reset();
  }
}

void Engine::run(Job& job) {
  if (job.cancelled()) {
    job.finish("cancelled", 0);
    return;
  }
  try {
    CompletionRequest& request = job.request;
    PreparedPrompt prepared = prepare_chat_request(request.chat, tokenizer_, model_.config(),
                                                   model_.backend().compute_dtype());
    // The request's images were bounded by the server's limits when parsed; these hold unless
    // the two disagree, and keep a request from running past the workspace the model planned.
    if (prepared.max_image_patches > limits_.max_image_patches)
      fail("an image needs ", prepared.max_image_patches, " patches; this server was started for ",
           limits_.max_image_patches, " (lower max_pixels)");
    if (prepared.image_tokens > limits_.max_image_tokens && limits_.max_image_tokens > 0)
      fail("the images need ", prepared.image_tokens, " tokens; this server takes ",
           limits_.max_image_tokens, " per request (fewer or smaller images)");
    GenerationRequest generation = std::move(request.generation);
    generation.prompt_ids = std::move(prepared.prompt_ids);
    generation.images = std::move(prepared.images);
    const int64_t prompt_tokens = int64_t(generation.prompt_ids.size());
    job.start(prompt_tokens, prepared.image_tokens);

    Clock::time_point last = job.arrived;
    bool first = true;
    generation.on_token = [&](int32_t) {
      const Clock::time_point now = Clock::now();
      if (first)
        metrics_.observe_time_to_first_token(seconds_between(last, now));
      else
        metrics_.observe_inter_token_latency(seconds_between(last, now));
      first = false;
      last = now;
      return !job.cancelled();
    };
    // Token bytes come from the tokenizer here, on the worker: the HTTP threads never touch it.
    generation.on_logprob = [&](const TokenLogprob& logprob) {
      LogprobEntry entry{{tokenizer_.token_bytes(logprob.id), logprob.logprob}, {}};
      for (const TopLogprob& top : logprob.top)
        entry.top.push_back({tokenizer_.token_bytes(top.id), top.logprob});
      job.append_logprob(std::move(entry));
    };
    Generator generator(model_, tokenizer_);
    const GenerationResult result =
        generator.generate(generation, [&](const std::string& piece) { job.append(piece); });
    const int64_t completion_tokens = int64_t(result.tokens.size());
    metrics_.add_tokens(prompt_tokens, completion_tokens);
    job.finish(result.finish_reason, completion_tokens);
  } catch (const ParamError& e) {
    job.fail(e.kind(), e.what(), e.param());
  } catch (const Error& e) {
    job.fail(e.kind(), e.what());
  } catch (const std::bad_alloc&) {
    job.fail(ErrorKind::ResourceLimit, "out of memory");
  } catch (const std::exception& e) {
    job.fail(ErrorKind::Internal, e.what());
  }
}

}  // namespace qwenvl
