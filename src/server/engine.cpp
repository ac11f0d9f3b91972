#include "server/engine.h"

#include <new>
#include <optional>

#include "runtime/chat_request.h"
#include "runtime/generator.h"

namespace qwenvl {

namespace {

// Threads that build prompts for the batch runner: two keep a large image's decode off the
// worker while a second request's text is tokenized.
constexpr int kPreparers = 2;

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Ends a job with the error a request raised, in the category its HTTP status comes from.
void fail_job(Job& job, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
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

// A request's prompt built (images decoded) and checked against the model's limits, as the
// generator takes it.
GenerationRequest prepare_generation(CompletionRequest& request, const Tokenizer& tokenizer,
                                     Qwen25VL& model, const ModelLimits& limits,
                                     int64_t& image_tokens) {
  PreparedPrompt prepared = prepare_chat_request(request.chat, tokenizer, model.config(),
                                                 model.backend().compute_dtype());
  // The request's images were bounded by the server's limits when parsed; these hold unless
  // the two disagree, and keep a request from running past the workspace the model planned.
  if (prepared.max_image_patches > limits.max_image_patches)
    fail("an image needs ", prepared.max_image_patches, " patches; this server was started for ",
         limits.max_image_patches, " (lower max_pixels)");
  if (prepared.image_tokens > limits.max_image_tokens && limits.max_image_tokens > 0)
    fail("the images need ", prepared.image_tokens, " tokens; this server takes ",
         limits.max_image_tokens, " per request (fewer or smaller images)");
  GenerationRequest generation = std::move(request.generation);
  generation.prompt_ids = std::move(prepared.prompt_ids);
  generation.images = std::move(prepared.images);
  image_tokens = prepared.image_tokens;
  return generation;
}

// Time to first token and between tokens, per job, into the metrics; false once the client has
// gone.
std::function<bool(int32_t)> token_timer(Job& job, ServerMetrics& metrics) {
  auto last = std::make_shared<Clock::time_point>(job.arrived);
  auto first = std::make_shared<bool>(true);
  return [&job, &metrics, last, first](int32_t) {
    const Clock::time_point now = Clock::now();
    if (*first)
      metrics.observe_time_to_first_token(seconds_between(*last, now));
    else
      metrics.observe_inter_token_latency(seconds_between(*last, now));
    *first = false;
    *last = now;
    return !job.cancelled();
  };
}

// Token bytes come from the tokenizer here, on the worker: the HTTP threads never touch it.
std::function<void(const TokenLogprob&)> logprob_sink(Job& job, const Tokenizer& tokenizer) {
  return [&job, &tokenizer](const TokenLogprob& logprob) {
    LogprobEntry entry{{tokenizer.token_bytes(logprob.id), logprob.logprob}, {}};
    for (const TopLogprob& top : logprob.top)
      entry.top.push_back({tokenizer.token_bytes(top.id), top.logprob});
    job.append_logprob(std::move(entry));
  };
}

}  // namespace

Engine::Engine(Qwen25VL& model, const Tokenizer& tokenizer, const ModelLimits& limits,
               ServerMetrics& metrics, size_t max_queue, BatchCaches caches)
    : model_(model),
      tokenizer_(tokenizer),
      limits_(limits),
      metrics_(metrics),
      max_queue_(max_queue),
      caches_(caches),
      worker_([this] { work(); }) {
  if (limits_.max_sequences > 1)
    for (int i = 0; i < kPreparers; ++i) preparers_.emplace_back([this] { prepare_jobs(); });
}

Engine::~Engine() { stop(); }

std::shared_ptr<Job> Engine::submit(CompletionRequest request) {
  std::lock_guard lock(mutex_);
  if (stopping_ || queue_.size() >= max_queue_) return nullptr;
  auto job = std::make_shared<Job>(std::move(request));
  queue_.push_back(job);
  metrics_.queue_depth.store(int64_t(queue_.size()));
  wake_.notify_all();
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
  for (std::thread& preparer : preparers_)
    if (preparer.joinable()) preparer.join();
  if (worker_.joinable()) worker_.join();
  // Prepared jobs the runner never took.
  std::lock_guard lock(mutex_);
  for (Prepared& prepared : ready_)
    prepared.job->fail(ErrorKind::ResourceLimit, "the server is shutting down");
  ready_.clear();
}

void Engine::hold(bool on) {
  std::lock_guard lock(mutex_);
  held_ = on;
  wake_.notify_all();
}

void Engine::work() {
  if (limits_.max_sequences > 1) {
    work_batched();
    return;
  }
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
    int64_t image_tokens = 0;
    GenerationRequest generation =
        prepare_generation(job.request, tokenizer_, model_, limits_, image_tokens);
    const int64_t prompt_tokens = int64_t(generation.prompt_ids.size());
    job.start(prompt_tokens, image_tokens);
    generation.on_token = token_timer(job, metrics_);
    generation.on_logprob = logprob_sink(job, tokenizer_);
    Generator generator(model_, tokenizer_);
    const GenerationResult result =
        generator.generate(generation, [&](const std::string& piece) { job.append(piece); });
    const int64_t completion_tokens = int64_t(result.tokens.size());
    metrics_.add_tokens(prompt_tokens, completion_tokens);
    job.finish(result.finish_reason, completion_tokens);
  } catch (...) {
    fail_job(job, std::current_exception());
  }
}

void Engine::prepare_jobs() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mutex_);
      // Only what the runner can start soon: prepared prompts hold their pixel values.
      wake_.wait(lock, [&] {
        return stopping_ ||
               (!held_ && !queue_.empty() &&
                preparing_ + int(ready_.size()) + runner_load_ < limits_.max_sequences);
      });
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      ++preparing_;
      metrics_.queue_depth.store(int64_t(queue_.size()));
    }
    std::optional<Prepared> prepared;
    if (job->cancelled()) {
      job->finish("cancelled", 0);
    } else {
      try {
        int64_t image_tokens = 0;
        Prepared p{job, prepare_generation(job->request, tokenizer_, model_, limits_, image_tokens),
                   0};
        p.prompt_tokens = int64_t(p.generation.prompt_ids.size());
        job->start(p.prompt_tokens, image_tokens);
        p.generation.on_token = token_timer(*job, metrics_);
        p.generation.on_logprob = logprob_sink(*job, tokenizer_);
        prepared = std::move(p);
      } catch (...) {
        fail_job(*job, std::current_exception());
      }
    }
    std::lock_guard lock(mutex_);
    --preparing_;
    if (prepared) ready_.push_back(std::move(*prepared));
    wake_.notify_all();
  }
}

void Engine::start_batched(Prepared& prepared, BatchRunner& runner) {
  const std::shared_ptr<Job> job = prepared.job;
  try {
    // The callbacks hold the job: it lives until the runner is done with it.
    BatchCallbacks callbacks;
    callbacks.on_text = [job](const std::string& piece) { job->append(piece); };
    callbacks.on_done = [job, prompt_tokens = prepared.prompt_tokens,
                         this](GenerationResult& result) {
      const int64_t completion_tokens = int64_t(result.tokens.size());
      metrics_.add_tokens(prompt_tokens, completion_tokens);
      job->finish(result.finish_reason, completion_tokens);
    };
    callbacks.on_error = [job](std::exception_ptr error) { fail_job(*job, error); };
    callbacks.cancelled = [job] { return job->cancelled(); };
    runner.add(std::move(prepared.generation), std::move(callbacks));
  } catch (...) {
    fail_job(*job, std::current_exception());
  }
}

void Engine::work_batched() {
  BatchRunner runner(model_, tokenizer_, caches_);
  for (;;) {
    std::vector<Prepared> incoming;
    {
      std::unique_lock lock(mutex_);
      runner_load_ = runner.running() + runner.waiting();
      wake_.notify_all();  // the preparers may take more
      wake_.wait(lock, [&] { return stopping_ || !runner.idle() || (!held_ && !ready_.empty()); });
      if (stopping_) break;
      // The runner takes what it can start soon; the rest waits in the bounded queue.
      while (!held_ && !ready_.empty() &&
             runner.running() + runner.waiting() + int(incoming.size()) < limits_.max_sequences) {
        incoming.push_back(std::move(ready_.front()));
        ready_.pop_front();
      }
      runner_load_ = runner.running() + runner.waiting() + int(incoming.size());
    }
    for (Prepared& prepared : incoming) start_batched(prepared, runner);
    try {
      runner.step();
    } catch (...) {
      // The pass failed (the device): the runner has failed its requests; the next may run.
    }
    metrics_.running_sequences.store(runner.running());
    metrics_.kv_blocks_used.store(runner.used_blocks());
    metrics_.kv_blocks_free.store(runner.free_blocks());
    metrics_.kv_blocks_cached.store(runner.cached_blocks());
    metrics_.prefix_cache_hit_tokens.store(runner.prefix_hit_tokens());
    if (const ImageEmbeddingCache* images = runner.image_cache()) {
      metrics_.encoder_cache_hits.store(images->hits());
      metrics_.encoder_cache_misses.store(images->misses());
    }
  }
  runner.fail_all(
      std::make_exception_ptr(Error("the server is shutting down", ErrorKind::ResourceLimit)));
  metrics_.running_sequences.store(0);
  metrics_.kv_blocks_used.store(0);
}

}  // namespace qwenvl
