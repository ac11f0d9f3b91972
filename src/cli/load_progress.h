#pragma once
// Loading progress on stderr, when stderr is a terminal: bytes read, rate and time left, on one
// line rewritten at most ten times a second and cleared when loading ends.
#include <chrono>
#include <cstddef>

namespace qwenvl::cli {

class LoadProgress {
 public:
  LoadProgress();
  ~LoadProgress();  // clears the line
  LoadProgress(const LoadProgress&) = delete;
  LoadProgress& operator=(const LoadProgress&) = delete;

  bool enabled() const { return enabled_; }
  void update(size_t read_bytes, size_t total_bytes);

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_ = false;
  bool drawn_ = false;
  Clock::time_point start_, last_;
};

}  // namespace qwenvl::cli
