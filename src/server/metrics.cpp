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

namespace {

// One gauge or counter: its HELP and TYPE lines, then its value.
void scalar(std::string& out, const char* name, const char* kind, const char* help, int64_t value) {
  out +=
      cat("# HELP ", name, " ", help, "\n# TYPE ", name, " ", kind, "\n", name, " ", value, "\n");
}

}  // namespace

std::string ServerMetrics::prometheus() const {
  std::lock_guard lock(mutex_);
  std::string out;
  out +=
      "# HELP qwenvl_requests_total HTTP responses by status code.\n"
      "# TYPE qwenvl_requests_total counter\n";
  for (const auto& [status, count] : responses_)
    out += cat("qwenvl_requests_total{status=\"", status, "\"} ", count, "\n");
  scalar(out, "qwenvl_queue_depth", "gauge", "Requests waiting for the model.", queue_depth.load());
  scalar(out, "qwenvl_running_sequences", "gauge", "Sequences being generated.",
         running_sequences.load());
  scalar(out, "qwenvl_kv_blocks_used", "gauge", "KV cache blocks held by sequences.",
         kv_blocks_used.load());
  scalar(out, "qwenvl_kv_blocks_free", "gauge", "KV cache blocks free.", kv_blocks_free.load());
  scalar(out, "qwenvl_kv_blocks_cached", "gauge", "KV cache blocks published for prefix reuse.",
         kv_blocks_cached.load());
  scalar(out, "qwenvl_prefix_cache_hit_tokens_total", "counter",
         "Prompt tokens whose keys were reused.", prefix_cache_hit_tokens.load());
  scalar(out, "qwenvl_encoder_cache_hits_total", "counter",
         "Images whose embeddings came from the cache.", encoder_cache_hits.load());
  scalar(out, "qwenvl_encoder_cache_misses_total", "counter", "Images encoded by the vision tower.",
         encoder_cache_misses.load());
  scalar(out, "qwenvl_prompt_tokens_total", "counter", "Prompt tokens prefilled.", prompt_tokens_);
  scalar(out, "qwenvl_generation_tokens_total", "counter", "Tokens generated.", generated_tokens_);
  ttft_.write(out, "qwenvl_time_to_first_token_seconds",
              "Time from a request's arrival to its first generated token.");
  itl_.write(out, "qwenvl_inter_token_latency_seconds", "Time between generated tokens.");
  return out;
}

}  // namespace qwenvl
