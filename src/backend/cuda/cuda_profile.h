#pragma once
// Per-op GPU time, for finding where a forward pass spends it: with QWENVL_PROFILE_OPS=1 every
// CudaBackend op is bracketed by two CUDA events and, when the backend is destroyed, a table of
// time per op label (op and shape) goes to stderr. Captured graphs are not used while profiling
// (events inside a capture would time the capture, not the replay), so decode steps run eagerly
// and their figures include launch gaps; vision and prefill kernels are long enough not to care.
#include <cuda_runtime.h>

#include <string>
#include <vector>

namespace qwenvl {

class OpProfiler {
 public:
  OpProfiler();  // enabled when the environment variable QWENVL_PROFILE_OPS is set and not "0"
  ~OpProfiler();
  bool enabled() const { return enabled_; }
  // Records the start of `label` on `stream`; returns a handle for stop().
  int start(std::string label, cudaStream_t stream);
  void stop(int handle, cudaStream_t stream);
  void report();  // synchronizes, prints the current section's table, forgets what it printed
  void section(std::string name);  // reports what the previous section recorded, then starts `name`

 private:
  struct Interval {
    std::string label;
    cudaEvent_t begin = nullptr, end = nullptr;
  };
  bool enabled_ = false;
  std::string section_ = "load and warm-up";
  std::vector<Interval> intervals_;
  std::vector<cudaEvent_t> spare_;
  cudaEvent_t take_event();
};

// Brackets one op: ProfileScope scope(profiler, stream, [&] { return label; }). The label is built
// only when profiling is on.
class ProfileScope {
 public:
  template <typename MakeLabel>
  ProfileScope(OpProfiler& profiler, cudaStream_t stream, MakeLabel&& make_label)
      : profiler_(profiler), stream_(stream) {
    if (profiler.enabled()) handle_ = profiler.start(make_label(), stream);
  }
  ~ProfileScope() {
    if (handle_ >= 0) profiler_.stop(handle_, stream_);
  }
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  OpProfiler& profiler_;
  cudaStream_t stream_;
  int handle_ = -1;
};

}  // namespace qwenvl
