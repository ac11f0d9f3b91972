#include "cli/load_progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace qwenvl::cli {

LoadProgress::LoadProgress() : enabled_(isatty(STDERR_FILENO) == 1) {
  start_ = last_ = Clock::now();
}

LoadProgress::~LoadProgress() {
  if (drawn_) std::fputs("\r\033[K", stderr);
}

void LoadProgress::update(size_t read_bytes, size_t total_bytes) {
  if (!enabled_ || total_bytes == 0) return;
  const auto now = Clock::now();
  if (now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double done = double(std::min(read_bytes, total_bytes));
  const double rate = seconds > 0 ? done / seconds : 0;
  const double left = rate > 0 ? (double(total_bytes) - done) / rate : 0;
  std::fprintf(stderr, "\r\033[Kloading weights: %.1f / %.1f GB, %.2f GB/s, %.0f s left",
               done / 1e9, double(total_bytes) / 1e9, rate / 1e9, left);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace qwenvl::cli
