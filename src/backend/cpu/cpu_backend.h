#pragma once
// The CPU backend: fp32 activations, weights used where they lie (memory-mapped bf16/f16/f32),
// OpenBLAS for the large matrix products and threaded kernels for the rest. It is the reference
// the CUDA backend is tested against, so every op states the transformers function it mirrors.
//
// The ops are spread over one file per family: cpu_backend.cpp (memory, copies), cpu_linear.cpp,
// cpu_norm.cpp, cpu_elementwise.cpp, cpu_rope.cpp, cpu_attention.cpp, cpu_rows.cpp,
// cpu_sample.cpp.
#include <memory>
#include <utility>
#include <vector>

#include "backend/backend.h"

namespace qwenvl {

class CpuBackend : public Backend {
 public:
  CpuBackend();
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::CPU; }
  DType compute_dtype() const override { return DType::F32; }

  void reserve(size_t weight_bytes, size_t persistent_bytes, size_t workspace_bytes) override;
  Tensor upload_weight(const Tensor& host, DType dtype) override;
  Tensor upload_weight_stacked(const std::vector<Tensor>& parts, DType dtype) override;
  Tensor alloc_persistent(const Shape& shape, DType dtype) override;
  Tensor alloc(const Shape& shape, DType dtype) override;
  size_t workspace_mark() const override { return workspace_.used; }
  void workspace_release(size_t mark) override;
  size_t peak_bytes() const override;

  void copy_from_host(const Tensor& host, Tensor& device_dst) override;
  void copy_to_host(const Tensor& device_src, Tensor& host_dst) override;
  void synchronize() override {}

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) override;
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override;
  void add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& w, float eps,
                    Tensor& out) override;
  void add(Tensor& a, const Tensor& b) override;
  void swiglu(const Tensor& gate_up, Tensor& out) override;
  void gelu(Tensor& x) override;
  void rope_qkv(const Tensor& qkv, const Tensor& positions, const RopeSpec& spec,
                const Tensor& slots, Tensor& q, Tensor& k, Tensor& v) override;
  void attention(const Tensor& q, const Tensor& k, const Tensor& v,
                 const AttentionSegments& segments, Tensor& out) override;
  void gather_rows(const Tensor& src, const Tensor& indices, Tensor& out) override;
  void scatter_rows(const Tensor& src, const Tensor& indices, Tensor& dst) override;
  void increment(Tensor& values) override;
  void sample(Tensor& logits, const Tensor& history, const SamplingParams& params, float uniform,
              Tensor& next_token) override;
  void penalize_repeats(Tensor& logits, const Tensor& ids, const Tensor& offsets,
                        const Tensor& penalties) override;
  void argmax_rows(const Tensor& logits, Tensor& next_tokens) override;

 private:
  // One of the three reserved regions: a 64-byte aligned buffer handed out front to back.
  struct Region {
    explicit Region(const char* name) : what(name) {}
    const char* what;
    std::shared_ptr<char> memory;
    size_t capacity = 0, used = 0, peak = 0;
  };
  static Tensor take(Region& region, const Shape& shape, DType dtype);

  // Scratch the ops keep between calls so that, once warm, a call allocates nothing: per-thread
  // fp32 weight panels for linear, per-thread partial results for attention. Grown on first use
  // of a larger shape; counted in peak_bytes. 64-byte aligned; threads × floats_per_thread.
  float* thread_scratch(int threads, size_t floats_per_thread);
  void linear_small_batch(const float* x, int64_t m, int64_t k, const Tensor& w, float* out);
  void linear_large_batch(const float* x, int64_t m, int64_t k, const Tensor& w, float* out);
  // The same with a packed 4-bit weight (DType::Q4), dequantized inside (cpu_linear_int4.cpp).
  void linear_int4(const float* x, int64_t m, const Tensor& w, float* out);
  // The same with an FP8 weight (DType::F8E4M3), decoded inside (cpu_linear_fp8.cpp).
  void linear_fp8(const float* x, int64_t m, const Tensor& w, float* out);

  Region weights_{"weights"}, persistent_{"persistent"}, workspace_{"workspace"};
  std::vector<float> scratch_;
  std::vector<std::pair<float, int32_t>> sample_candidates_;  // (score, id), reused by sample
  std::vector<int32_t> sample_history_;
};

// How fast the thread pool's threads read host memory, bytes per second (cpu_bandwidth_probe.cpp).
double cpu_measure_host_read_bandwidth();

}  // namespace qwenvl
