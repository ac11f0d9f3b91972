// Kernel benchmark of the CUDA backend, against the two ceilings measured in the same run: a
// device-to-device copy (bytes read + written) and the best cuBLASLt rate at a large prefill
// shape. Every timing is the median of 9 replays of a CUDA graph holding `reps` calls, so launch
// gaps do not count; inputs are random (never zeros) and rotated across copies where a single
// copy would fit in the 50 MB L2. Correctness is checked by tests/backend/cuda_ops_test.cpp.
//
// Usage: cuda_ops_bench [bf16|f16] [quick]. Prints one line per measurement; `quick` keeps only
// the decode-shaped linear and the attention lines.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/packed_fp8.h"
#include "core/half.h"

using namespace qwenvl;

namespace {

uint64_t rng_state = 0x9e3779b97f4a7c15ull;
float next_normalish() {  // sum of uniforms: cheap, roughly N(0, 1)
  float s = 0;
  for (int i = 0; i < 4; ++i) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    s += float(rng_state >> 40) / float(1 << 24) - 0.5f;
  }
  return s * 1.7f;
}

// Random values (never zeros) from a pool of 4M draws, copied at a moving offset: fast enough for
// gigabytes of weights, and no two rows alike.
Tensor random_host(const Shape& shape, DType dtype, float scale) {
  static std::vector<float> pool;
  if (pool.empty()) {
    pool.resize(size_t(1) << 22);
    for (float& v : pool) v = next_normalish();
  }
  Tensor t = Tensor::empty(shape, dtype);
  size_t offset = size_t(next_normalish() * 1e6 + 2e6) % pool.size();
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = pool[(offset + size_t(i) * 7) % pool.size()] * scale;
    if (dtype == DType::BF16)
      t.data<uint16_t>()[i] = float_to_bf16(v);
    else if (dtype == DType::F16)
      t.data<uint16_t>()[i] = float_to_fp16(v);
    else
      t.data<float>()[i] = v;
  }
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int graph_key = 1000;

// Seconds per call of op(i) (i = call index, for rotating inputs).
double time_per_call(CudaBackend& b, const std::function<void(int)>& op, int reps) {
  op(0);
  b.synchronize();
  int key = graph_key++;
  auto body = [&] {
    for (int i = 0; i < reps; ++i) op(i);
  };
  b.run_captured(key, body);
  b.synchronize();
  std::vector<double> times;
  for (int r = 0; r < 9; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    b.run_captured(key, body);
    b.synchronize();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                    reps);
  }
  return median(times);
}

double copy_bandwidth() {
  size_t bytes = size_t(1) << 30;
  void *a = nullptr, *c = nullptr;
  cudaMalloc(&a, bytes);
  cudaMalloc(&c, bytes);
  cudaMemset(a, 1, bytes);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<double> t;
  for (int i = 0; i < 10; ++i) {
    cudaEventRecord(e0);
    cudaMemcpyAsync(c, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    if (i) t.push_back(ms * 1e-3);
  }
  cudaFree(a);
  cudaFree(c);
  return 2.0 * bytes / median(t);
}

}  // namespace

int main(int argc, char** argv) {
  DType dtype = argc > 1 && std::string(argv[1]) == "f16" ? DType::F16 : DType::BF16;
  const bool quick = argc > 2 && std::string(argv[2]) == "quick";
  if (!cuda_device_available()) {
    std::printf("no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  double copy_bw = copy_bandwidth();
  std::printf("device %s, %d SMs; %s; copy bandwidth %.0f GB/s (read + write)\n", prop.name,
              prop.multiProcessorCount, std::string(dtype_name(dtype)).c_str(), copy_bw / 1e9);
  try {
    CudaBackend b(dtype);
    b.reserve(size_t(4) << 30, size_t(1) << 30, size_t(4) << 30);

    // ---- linear at decode shapes: bytes of w per call over time, vs the copy bandwidth.
    struct Shape3 {
      int m, n, k;
      bool f32;
      const char* what;
    };
    for (Shape3 s :
         {Shape3{1, 22016, 2048, false, "3B gate_up"}, Shape3{1, 2048, 11008, false, "3B down"},
          Shape3{1, 2048, 2048, false, "3B o_proj"}, Shape3{1, 2560, 2048, false, "3B qkv"},
          Shape3{1, 37888, 3584, false, "7B gate_up"}, Shape3{1, 3584, 18944, false, "7B down"},
          Shape3{1, 151936, 2048, true, "3B logits f32"},
          Shape3{4, 11008, 2048, false, "3B gate/up M=4"},
          Shape3{8, 18944, 3584, false, "7B gate/up M=8"}}) {
      if (quick && (s.f32 || s.m > 1)) continue;
      size_t mark = b.workspace_mark();
      size_t wbytes = size_t(s.n) * s.k * 2;
      int copies = int(std::clamp<size_t>((size_t(200) << 20) / wbytes, 1, 8));
      std::vector<Tensor> ws;
      for (int i = 0; i < copies; ++i)
        ws.push_back(b.upload_weight(random_host({s.n, s.k}, dtype, 0.02f), dtype));
      Tensor x = b.alloc({s.m, s.k}, dtype);
      b.copy_from_host(random_host({s.m, s.k}, DType::F32, 1.0f), x);
      Tensor out = b.alloc({s.m, s.n}, s.f32 ? DType::F32 : dtype);
      for (bool gemv : {true, false}) {
        b.set_prefer_gemv(gemv);
        double t = time_per_call(
            b, [&](int i) { b.linear(x, ws[i % copies], nullptr, out); }, 50);
        double bw = double(wbytes) / t;
        std::printf("linear %-16s M=%d N=%-6d K=%-6d %-8s %8.1f us %7.0f GB/s  %3.0f%% of copy\n",
                    s.what, s.m, s.n, s.k, gemv ? "gemv" : "cublasLt", t * 1e6, bw / 1e9,
                    100 * bw / copy_bw);
      }
      b.set_prefer_gemv(true);
      b.workspace_release(mark);
    }

    // ---- linear with FP8 weights (--quantize fp8) at decode shapes: FP8 bytes (codes and row
    // scales) per call over time, vs the copy bandwidth; the GEMV and the dequantized slabs.
    for (Shape3 s :
         {Shape3{1, 22016, 2048, false, "3B gate_up"}, Shape3{1, 2048, 11008, false, "3B down"},
          Shape3{1, 37888, 3584, false, "7B gate_up"}, Shape3{1, 3584, 18944, false, "7B down"},
          Shape3{8, 18944, 3584, false, "7B gate/up M=8"}}) {
      if (quick && s.m > 1) continue;
      size_t mark = b.workspace_mark();
      const Tensor host = quantize_fp8(random_host({s.n, s.k}, DType::F32, 0.02f), "bench");
      const size_t wbytes = host.nbytes();
      int copies = int(std::clamp<size_t>((size_t(200) << 20) / wbytes, 1, 8));
      std::vector<Tensor> ws;
      for (int i = 0; i < copies; ++i) ws.push_back(b.upload_weight(host, DType::F8E4M3));
      Tensor x = b.alloc({s.m, s.k}, dtype);
      b.copy_from_host(random_host({s.m, s.k}, DType::F32, 1.0f), x);
      Tensor out = b.alloc({s.m, s.n}, dtype);
      for (bool gemv : {true, false}) {
        b.set_prefer_gemv(gemv);
        double t = time_per_call(
            b, [&](int i) { b.linear(x, ws[i % copies], nullptr, out); }, gemv ? 50 : 5);
        double bw = double(wbytes) / t;
        std::printf(
            "linear fp8 %-16s M=%d N=%-6d K=%-6d %-8s %8.1f us %7.0f GB/s  %3.0f%% of copy\n",
            s.what, s.m, s.n, s.k, gemv ? "gemv" : "slabs", t * 1e6, bw / 1e9, 100 * bw / copy_bw);
      }
      b.set_prefer_gemv(true);
      b.workspace_release(mark);
    }

    // ---- what a product of a shape not seen before costs on the host (cuBLASLt plan: heuristic
    // query, first launch), against the same call again: prompts of new lengths pay it.
    if (!quick) {
      size_t mark = b.workspace_mark();
      Tensor w = b.upload_weight(random_host({2560, 2048}, dtype, 0.02f), dtype);
      Tensor x = b.alloc({1600, 2048}, dtype), out = b.alloc({1600, 2560}, dtype);
      for (int m : {777, 778, 1555}) {
        Tensor xm = x.rows(0, m), om = out.rows(0, m);
        b.synchronize();
        auto t0 = std::chrono::steady_clock::now();
        b.linear(xm, w, nullptr, om);
        b.synchronize();
        auto t1 = std::chrono::steady_clock::now();
        b.linear(xm, w, nullptr, om);
        b.synchronize();
        auto t2 = std::chrono::steady_clock::now();
        std::printf("linear new shape M=%d N=2560 K=2048: first call %.3f ms, second %.3f ms\n", m,
                    std::chrono::duration<double, std::milli>(t1 - t0).count(),
                    std::chrono::duration<double, std::milli>(t2 - t1).count());
      }
      b.workspace_release(mark);
    }

    // ---- host time per call (enqueue only, 200 calls): what a prompt's ops cost the CPU when the
    // GPU is faster than the host can feed it (short prompts).
    if (!quick) {
      size_t mark = b.workspace_mark();
      Tensor w = b.upload_weight(random_host({2560, 2048}, dtype, 0.02f), dtype);
      Tensor bias = b.upload_weight(random_host({2560}, dtype, 0.02f), dtype);
      Tensor x = b.alloc({28, 2048}, dtype), out = b.alloc({28, 2560}, dtype);
      Tensor nw = b.upload_weight(random_host({2048}, dtype, 1.0f), dtype),
             normed = b.alloc({28, 2048}, dtype);
      auto host_us = [&](const char* what, const std::function<void()>& op) {
        op();
        b.synchronize();
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 200; ++i) op();
        auto t1 = std::chrono::steady_clock::now();
        b.synchronize();
        std::printf("host per call %-28s %7.1f us\n", what,
                    std::chrono::duration<double, std::micro>(t1 - t0).count() / 200);
      };
      host_us("linear 28x2560x2048", [&] { b.linear(x, w, nullptr, out); });
      host_us("linear 28x2560x2048 + bias", [&] { b.linear(x, w, &bias, out); });
      Tensor x1 = x.rows(0, 1), o1 = out.rows(0, 1);
      host_us("linear 1x2560x2048 (gemv)", [&] { b.linear(x1, w, nullptr, o1); });
      host_us("rms_norm 28x2048", [&] { b.rms_norm(x, nw, 1e-6f, normed); });
      host_us("alloc + release", [&] {
        size_t m2 = b.workspace_mark();
        b.alloc({28, 2048}, dtype);
        b.workspace_release(m2);
      });
      b.workspace_release(mark);
    }

    // ---- linear at prefill shapes: TFLOP/s.
    if (!quick)
      // (f32 = "with a bias" here: the vision tower's products carry one.)
      for (Shape3 s :
           {Shape3{4096, 11008, 2048, false, "3B gate/up"},
            Shape3{4096, 18944, 3584, false, "7B gate/up"},
            Shape3{4096, 3584, 18944, false, "7B down"}, Shape3{8192, 8192, 8192, false, "square"},
            Shape3{1024, 2560, 2048, true, "3B qkv"}, Shape3{1024, 2048, 2048, false, "3B o_proj"},
            Shape3{1024, 22016, 2048, false, "3B gate_up"},
            Shape3{1024, 2048, 11008, false, "3B down"},
            Shape3{4064, 3840, 1280, true, "vision qkv"},
            Shape3{4064, 1280, 1280, true, "vision proj"},
            Shape3{4064, 6840, 1280, true, "vision gate_up"},
            Shape3{4064, 1280, 3420, true, "vision down"},
            Shape3{4096, 1280, 3420, true, "vision down 4096"},
            Shape3{4064, 1280, 3420, false, "vision down nb"}}) {
        size_t mark = b.workspace_mark();
        Tensor w = b.upload_weight(random_host({s.n, s.k}, dtype, 0.02f), dtype);
        Tensor bias = b.upload_weight(random_host({s.n}, dtype, 0.02f), dtype);
        Tensor x = b.alloc({s.m, s.k}, dtype);
        b.copy_from_host(random_host({s.m, s.k}, DType::F32, 1.0f), x);
        Tensor out = b.alloc({s.m, s.n}, dtype);
        double t = time_per_call(
            b, [&](int) { b.linear(x, w, s.f32 ? &bias : nullptr, out); }, 5);
        std::printf("linear %-16s M=%d N=%-6d K=%-6d cublasLt %8.1f us %7.1f TFLOP/s\n", s.what,
                    s.m, s.n, s.k, t * 1e6, 2.0 * s.m * s.n * s.k / t / 1e12);
        b.workspace_release(mark);
      }

    // ---- attention.
    struct Attn {
      const char* what;
      int segments, nq, nk, hq, hkv, d;
      bool causal;
    };
    for (Attn a : {Attn{"prefill causal 4k 7B", 1, 4096, 4096, 28, 4, 128, true},
                   Attn{"prefill causal 4k 3B", 1, 4096, 4096, 16, 2, 128, true},
                   Attn{"vision windows 64", 256, 64, 64, 16, 16, 80, false},
                   Attn{"vision full 4k", 1, 4096, 4096, 16, 16, 80, false},
                   Attn{"vision full 16k", 1, 16384, 16384, 16, 16, 80, false},
                   Attn{"decode 8k 7B", 1, 1, 8192, 28, 4, 128, true},
                   Attn{"decode 32k 7B", 1, 1, 32768, 28, 4, 128, true},
                   Attn{"decode 8k x4 seqs", 4, 1, 8192, 28, 4, 128, true}}) {
      size_t mark = b.workspace_mark();
      int64_t tq = int64_t(a.segments) * a.nq, tk = int64_t(a.segments) * a.nk;
      Tensor q = b.alloc({tq, a.hq, a.d}, dtype), k = b.alloc({tk, a.hkv, a.d}, dtype),
             v = b.alloc({tk, a.hkv, a.d}, dtype), out = b.alloc({tq, a.hq, a.d}, dtype);
      for (Tensor* t : {&q, &k, &v})
        b.copy_from_host(random_host(t->shape(), DType::F32, 1.0f), *t);
      std::vector<int32_t> cu_q, cu_k;
      for (int s = 0; s <= a.segments; ++s) cu_q.push_back(s * a.nq), cu_k.push_back(s * a.nk);
      Tensor hq = Tensor::empty({a.segments + 1}, DType::I32),
             hk = Tensor::empty({a.segments + 1}, DType::I32);
      std::memcpy(hq.data(), cu_q.data(), cu_q.size() * 4);
      std::memcpy(hk.data(), cu_k.data(), cu_k.size() * 4);
      AttentionSegments seg;
      seg.cu_q = b.alloc({a.segments + 1}, DType::I32);
      seg.cu_k = b.alloc({a.segments + 1}, DType::I32);
      b.copy_from_host(hq, seg.cu_q);
      b.copy_from_host(hk, seg.cu_k);
      seg.segments = a.segments;
      seg.max_q = a.nq;
      seg.max_k = a.nk;
      seg.causal = a.causal;
      seg.scale = 1.0f / std::sqrt(float(a.d));
      int reps = a.nq == 1 ? 50 : 3;
      double t = time_per_call(
          b, [&](int) { b.attention(q, k, v, seg, out); }, reps);
      if (a.nq == 1) {
        double bytes = double(tk) * a.hkv * a.d * 2 * 2;
        std::printf("attention %-22s %8.1f us %7.0f GB/s  %3.0f%% of copy\n", a.what, t * 1e6,
                    bytes / t / 1e9, 100 * bytes / t / copy_bw);
      } else {
        double flops = 4.0 * a.segments * a.nq * double(a.nk) * a.d * a.hq * (a.causal ? 0.5 : 1.0);
        std::printf("attention %-22s %8.1f us %7.1f TFLOP/s\n", a.what, t * 1e6, flops / t / 1e12);
      }
      b.workspace_release(mark);
    }

    // ---- fused elementwise at a 7B prefill size: bytes moved over time.
    if (!quick) {
      int64_t rows = 4096, cols = 3584;
      Tensor res = b.alloc({rows, cols}, dtype), delta = b.alloc({rows, cols}, dtype),
             out = b.alloc({rows, cols}, dtype), w = b.alloc({cols}, dtype);
      for (Tensor* t : {&res, &delta, &w})
        b.copy_from_host(random_host(t->shape(), DType::F32, 1.0f), *t);
      double t = time_per_call(
          b, [&](int) { b.add_rms_norm(res, delta, w, 1e-6f, out); }, 20);
      double bytes = double(rows) * cols * 2 * 4;  // read residual, delta; write residual, out
      std::printf("add_rms_norm 4096x3584 %8.1f us %7.0f GB/s  %3.0f%% of copy\n", t * 1e6,
                  bytes / t / 1e9, 100 * bytes / t / copy_bw);
      Tensor gate_up = b.alloc({rows, 2 * 18944}, dtype), act = b.alloc({rows, 18944}, dtype);
      b.copy_from_host(random_host(gate_up.shape(), DType::F32, 1.0f), gate_up);
      t = time_per_call(
          b, [&](int) { b.swiglu(gate_up, act); }, 20);
      bytes = double(rows) * 18944 * 2 * 3;
      std::printf("swiglu 4096x18944      %8.1f us %7.0f GB/s  %3.0f%% of copy\n", t * 1e6,
                  bytes / t / 1e9, 100 * bytes / t / copy_bw);
    }
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
  return 0;
}
