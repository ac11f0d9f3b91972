#include "backend/cuda/cuda_profile.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

namespace qwenvl {

OpProfiler::OpProfiler() {
  const char* flag = std::getenv("QWENVL_PROFILE_OPS");
  enabled_ = flag && *flag && std::strcmp(flag, "0") != 0;
}

OpProfiler::~OpProfiler() {
  if (!enabled_) return;
  report();
  for (cudaEvent_t e : spare_) cudaEventDestroy(e);
}

cudaEvent_t OpProfiler::take_event() {
  if (!spare_.empty()) {
    cudaEvent_t e = spare_.back();
    spare_.pop_back();
    return e;
  }
  cudaEvent_t e = nullptr;
  cudaEventCreate(&e);
  return e;
}

int OpProfiler::start(std::string label, cudaStream_t stream) {
  Interval interval{std::move(label), take_event(), take_event()};
  cudaEventRecord(interval.begin, stream);
  intervals_.push_back(std::move(interval));
  return int(intervals_.size()) - 1;
}

void OpProfiler::stop(int handle, cudaStream_t stream) {
  cudaEventRecord(intervals_[size_t(handle)].end, stream);
}

void OpProfiler::section(std::string name) {
  if (!enabled_) return;
  report();
  section_ = std::move(name);
}

void OpProfiler::report() {
  if (intervals_.empty()) return;
  struct Total {
    int calls = 0;
    double ms = 0;
  };
  std::map<std::string, Total> totals;
  double all = 0;
  for (Interval& interval : intervals_) {
    float ms = 0;
    cudaEventSynchronize(interval.end);
    if (cudaEventElapsedTime(&ms, interval.begin, interval.end) != cudaSuccess) ms = 0;
    Total& t = totals[interval.label];
    t.calls += 1;
    t.ms += ms;
    all += ms;
    spare_.push_back(interval.begin);
    spare_.push_back(interval.end);
  }
  intervals_.clear();
  cudaGetLastError();  // an interval left open by an error must not poison later calls
  std::vector<std::pair<std::string, Total>> rows(totals.begin(), totals.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  std::fprintf(stderr, "qwenvl op profile, %s: %.3f ms in %zu labels\n", section_.c_str(), all,
               rows.size());
  std::fprintf(stderr, "%10s %8s %6s %10s  %s\n", "ms", "share", "calls", "us/call", "op");
  for (const auto& [label, t] : rows)
    std::fprintf(stderr, "%10.3f %7.1f%% %6d %10.1f  %s\n", t.ms, 100.0 * t.ms / all, t.calls,
                 1000.0 * t.ms / t.calls, label.c_str());
}

}  // namespace qwenvl
