#pragma once
// The server's counters for GET /metrics, in Prometheus' text format (version 0.0.4): responses
// by HTTP status, queue depth, running sequences, tokens, and time-to-first-token and
// inter-token latency histograms. Written from the HTTP threads and the worker; every method
// is thread-safe.
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace qwenvl {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // The _bucket (cumulative, then +Inf), _sum and _count lines of `name`.
  void write(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void count_response(int status);
  void observe_time_to_first_token(double seconds);
  void observe_inter_token_latency(double seconds);
  void add_tokens(int64_t prompt_tokens, int64_t generated_tokens);
  std::atomic<int64_t> queue_depth{0};  // requests waiting for the model
  std::atomic<int64_t> running_sequences{0};
  // The paged KV cache's blocks (continuous batching; both 0 for one sequence at a time).
  std::atomic<int64_t> kv_blocks_used{0};
  std::atomic<int64_t> kv_blocks_free{0};
  // The caches of continuous batching: image embeddings found and encoded, prompt tokens whose
  // keys came from published blocks, and the blocks published.
  std::atomic<int64_t> encoder_cache_hits{0};
  std::atomic<int64_t> encoder_cache_misses{0};
  std::atomic<int64_t> prefix_cache_hit_tokens{0};
  std::atomic<int64_t> kv_blocks_cached{0};
  std::string prometheus() const;

 private:
  mutable std::mutex mutex_;
  std::map<int, int64_t> responses_;
  Histogram ttft_, itl_;
  int64_t prompt_tokens_ = 0, generated_tokens_ = 0;
};

}  // namespace qwenvl
