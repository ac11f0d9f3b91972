// Continuous batching without HTTP: N text requests run together through the batch runner on
// one device, for finding where a batched pass spends its time.
//   bench_batch --model DIR [--sequences 1,8,32,128] [--prompt 512] [--new 256]
//               [--device cuda] [--repetition-penalty 1.05]
// For each N: the time until all N are admitted and prefilled (as many prompts per pass as the
// prefill chunk holds, beside the decode rows of those admitted before), then the passes that
// decode all N and prefill nothing: their median wall time, the tokens/s it gives, and the bound
// for that pass (the weights a decode step reads plus every sequence's keys and values, once each,
// at --bandwidth-gbs). With QWENVL_PROFILE_OPS=1 the CUDA backend prints each phase's per-op GPU
// time: the gap to the wall time is host work and launch gaps.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "checkpoint/checkpoint.h"
#include "core/error.h"
#include "model/qwen2_5_vl.h"
#include "runtime/batch_runner.h"
#include "runtime/model_modules.h"
#include "runtime/model_setup.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace qwenvl;

std::string flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1];
  return fallback;
}

std::vector<int> numbers(const std::string& list) {
  std::vector<int> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoi(item));
  return out;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

int run(int argc, char** argv) {
  const std::string dir = flag(argc, argv, "model", "");
  if (dir.empty()) fail("usage: bench_batch --model DIR [--sequences 1,8,32,128] ...");
  const std::vector<int> levels = numbers(flag(argc, argv, "sequences", "1,8,32,128"));
  const int64_t prompt = std::stoll(flag(argc, argv, "prompt", "512"));
  const int64_t new_tokens = std::stoll(flag(argc, argv, "new", "256"));
  const float penalty = std::stof(flag(argc, argv, "repetition-penalty", "1.05"));
  const double bandwidth = std::stod(flag(argc, argv, "bandwidth-gbs", "3350")) * 1e9;
  const int most = *std::max_element(levels.begin(), levels.end());

  ModelFiles files = load_model_files(dir);
  const Checkpoint checkpoint = Checkpoint::open(dir, files.config);
  std::unique_ptr<Backend> backend =
      make_backend(flag(argc, argv, "device", "cuda"), DType::BF16, 0);
  ModelLimits limits;
  limits.max_context = prompt + new_tokens + 64;
  limits.max_sequences = most;
  limits.kv_cache_tokens = int64_t(most) * (prompt + new_tokens + kKvBlockSize);
  Qwen25VL model(files.config, checkpoint, *backend, limits);
  model.warm_up();  // kernels loaded and products planned, as serve does before its first request
  const MemoryPlan plan =
      Qwen25VL::plan(files.config, checkpoint, backend->compute_dtype(), limits);
  const TextConfig& text = files.config.text;
  const double kv_bytes_per_token = 2.0 * text.num_hidden_layers * text.num_key_value_heads *
                                    (text.hidden_size / text.num_attention_heads) *
                                    dtype_size(backend->compute_dtype());
  // What a decode pass reads of the weights: not the vision tower, nor the embedding table but
  // through lm_head.
  double step_weight_bytes = 0;
  for (const ModelModule& m : model_modules(files.config, backend->compute_dtype()))
    if (m.read_per_token) step_weight_bytes += double(m.weight_bytes);
  std::printf(
      "model %s on %s: weights %.2f GiB (a decode pass reads %.2f GiB), KV %.0f bytes "
      "per token\n",
      dir.c_str(), backend->name().c_str(), double(plan.weight_bytes) / (1 << 30),
      step_weight_bytes / (1 << 30), kv_bytes_per_token);

  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> id(1000, 100000);
  for (int n : levels) {
    BatchRunner runner(model, files.tokenizer);
    int finished = 0;
    for (int s = 0; s < n; ++s) {
      GenerationRequest r;
      for (int64_t i = 0; i < prompt; ++i) r.prompt_ids.push_back(id(rng));
      r.max_new_tokens = new_tokens;
      r.sampling.temperature = 0.0f;
      r.sampling.repetition_penalty = penalty;
      r.ignore_eos = true;
      BatchCallbacks c;
      c.on_done = [&finished](GenerationResult&) { ++finished; };
      // A failed pass fails every sequence, then step() throws it.
      c.on_error = [](std::exception_ptr) {};
      runner.add(std::move(r), std::move(c));
    }
    model.profile_section("prefill of " + std::to_string(n) + " sequences");
    const Clock::time_point start = Clock::now();
    int passes = 0;
    // Until a pass prefills nothing: every request admitted (or, were --new too small for
    // that, some already finished).
    while (!runner.idle()) {
      const BatchPass pass = runner.step();
      ++passes;
      if (pass.prefill_rows == 0) break;
    }
    model.synchronize();
    const double prefill_s = seconds_since(start);
    model.profile_section("decode of " + std::to_string(n) + " sequences");
    std::vector<double> decode_ms;
    while (!runner.idle()) {
      const Clock::time_point t = Clock::now();
      const BatchPass pass = runner.step();
      if (pass.decode_rows == n && pass.prefill_rows == 0)
        decode_ms.push_back(seconds_since(t) * 1e3);
    }
    model.profile_section("idle");
    std::sort(decode_ms.begin(), decode_ms.end());
    const double median = decode_ms.empty() ? 0 : decode_ms[decode_ms.size() / 2];
    const double step_bytes =
        step_weight_bytes + double(n) * double(prompt + new_tokens / 2) * kv_bytes_per_token;
    const double bound_ms = step_bytes / bandwidth * 1e3;
    std::printf(
        "sequences %d: prefill %.3f s (%d passes, %.0f prompt tokens/s); decode pass median %.2f "
        "ms over %zu passes: %.0f tokens/s; bound %.2f ms (%.0f tokens/s): %.0f%% of it; %d "
        "finished\n",
        n, prefill_s, passes, double(n) * double(prompt) / prefill_s, median, decode_ms.size(),
        median > 0 ? n / median * 1e3 : 0.0, bound_ms, n / bound_ms * 1e3,
        median > 0 ? 100 * bound_ms / median : 0.0, finished);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_batch: %s\n", e.what());
    return 1;
  }
}
