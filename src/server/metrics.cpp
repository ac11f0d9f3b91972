#include "server/metrics.h"

#include "core/error.h"

namespace qwenvl {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  size_t bucket = 0;
  while (bucket < bounds_.size() && value > bounds_[bucket]) ++bucket;
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& help) const {
  out += cat("# HELP ", name, " ", help, "\n# TYPE ", name, " histogram\n");
  int64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += cat(name, "_bucket{le=\"", bounds_[i], "\"} ", cumulative, "\n");
  }
  out += cat(name, "_bucket{le=\"+Inf\"} ", count_, "\n", name, "_sum ", sum_, "\n", name,
             "_count ", count_, "\n");
}

// Seconds: a first token takes a prefill (milliseconds to seconds, with images and a queue);
// a decode step on a GPU takes a few milliseconds, on a CPU up to a second.
ServerMetrics::ServerMetrics()
    : ttft_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}) {}

void ServerMetrics::count_response(int status) {
  std::lock_guard lock(mutex_);
  ++responses_[status];
}

void ServerMetrics::observe_time_to_first_token(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}

void ServerMetrics::observe_inter_token_latency(double seconds) {
  std::lock_guard lock(mutex_);
  itl_.observe(seconds);
}

void ServerMetrics::add_tokens(int64_t prompt_tokens, int64_t generated_tokens) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += prompt_tokens;
  generated_tokens_ += generated_tokens;
}

std::string ServerMetrics::prometheus() const {
  std::lock_guard lock(mutex_);
  std::string out;
  out +=
      "# HELP qwenvl_requests_total HTTP responses by status code.\n"
      "# TYPE qwenvl_requests_total counter\n";
  for (const auto& [status, count] : responses_)
    out += cat("qwenvl_requests_total{status=\"", status, "\"} ", count, "\n");
  out +=
      cat("# HELP qwenvl_queue_depth Requests waiting for the model.\n"
          "# TYPE qwenvl_queue_depth gauge\nqwenvl_queue_depth ",
          queue_depth.load(), "\n");
  out +=
      cat("# HELP qwenvl_running_sequences Sequences being generated.\n"
          "# TYPE qwenvl_running_sequences gauge\nqwenvl_running_sequences ",
          running_sequences.load(), "\n");
  out +=
      cat("# HELP qwenvl_kv_blocks_used KV cache blocks held by sequences.\n"
          "# TYPE qwenvl_kv_blocks_used gauge\nqwenvl_kv_blocks_used ",
          kv_blocks_used.load(), "\n");
  out +=
      cat("# HELP qwenvl_kv_blocks_free KV cache blocks free.\n"
          "# TYPE qwenvl_kv_blocks_free gauge\nqwenvl_kv_blocks_free ",
          kv_blocks_free.load(), "\n");
  out +=
      cat("# HELP qwenvl_kv_blocks_cached KV cache blocks published for prefix reuse.\n"
          "# TYPE qwenvl_kv_blocks_cached gauge\nqwenvl_kv_blocks_cached ",
          kv_blocks_cached.load(), "\n");
  out +=
      cat("# HELP qwenvl_prefix_cache_hit_tokens_total Prompt tokens whose keys were reused.\n"
          "# TYPE qwenvl_prefix_cache_hit_tokens_total counter\n"
          "qwenvl_prefix_cache_hit_tokens_total ",
          prefix_cache_hit_tokens.load(), "\n");
  out +=
      cat("# HELP qwenvl_encoder_cache_hits_total Images whose embeddings came from the cache.\n"
          "# TYPE qwenvl_encoder_cache_hits_total counter\nqwenvl_encoder_cache_hits_total ",
          encoder_cache_hits.load(), "\n");
  out +=
      cat("# HELP qwenvl_encoder_cache_misses_total Images encoded by the vision tower.\n"
          "# TYPE qwenvl_encoder_cache_misses_total counter\nqwenvl_encoder_cache_misses_total ",
          encoder_cache_misses.load(), "\n");
  out +=
      cat("# HELP qwenvl_prompt_tokens_total Prompt tokens prefilled.\n"
          "# TYPE qwenvl_prompt_tokens_total counter\nqwenvl_prompt_tokens_total ",
          prompt_tokens_, "\n");
  out +=
      cat("# HELP qwenvl_generation_tokens_total Tokens generated.\n"
          "# TYPE qwenvl_generation_tokens_total counter\nqwenvl_generation_tokens_total ",
          generated_tokens_, "\n");
  ttft_.write(out, "qwenvl_time_to_first_token_seconds",
              "Time from a request's arrival to its first generated token.");
  itl_.write(out, "qwenvl_inter_token_latency_seconds", "Time between generated tokens.");
  return out;
}

}  // namespace qwenvl
