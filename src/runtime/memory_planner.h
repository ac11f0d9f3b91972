#pragma once
// Where each module of a Qwen2.5-VL model goes under per-device memory budgets, what every device
// then holds, and what the budgets allow (tokens of KV cache, the largest image, an estimate of
// decode speed): computed from config.json alone, before any weight is read. A pure function: the
// caller says which GPUs exist and how much memory is free.
//
// Placement fills the GPUs in order (pipeline placement): modules stay on a GPU, in forward order,
// while its budget holds them with their share of the KV cache, the workspaces and the CUDA
// backend's own buffers. When they do not all fit, the fewest modules stream from pinned host
// memory through the last GPU (two device buffers of the largest streamed group: a decoder layer
// or a vision block), the vision tower first (it runs once per image), then the decoder layers
// from the last; the embeddings, final norm and lm_head never stream. With --offload cpu what
// is left runs on the CPU instead. An explicit device map replaces the automatic placement and
// is checked against the same budgets. What cannot fit is one Error, raised before any weight
// moves, that says what to change.
//
// qwenvl generate and serve run resident, streamed and CPU placements beside one GPU (the CPU's
// modules as stages of the model's pipeline); a pipeline over several GPUs is planned only.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "core/dtype.h"
#include "runtime/memory_budget.h"

namespace qwenvl {

// Where modules that do not fit on the GPUs go. Auto streams them: decode reads a
// module's bytes over PCIe about as fast as a CPU reads them from host memory, but a prompt's
// prefill, bound by compute, stays on the GPU only when streaming, and so does the KV cache.
enum class Offload { Stream, Cpu, Auto };
Offload parse_offload(const std::string& text);  // "stream" | "cpu" | "auto"; Error otherwise
const char* offload_name(Offload offload);

struct GpuMemory {
  int64_t bytes = 0;     // free memory on the GPU, or the budget that stands for it
  bool assumed = false;  // no such GPU here: planned for the size a budget gave it
};

// The bandwidths the decode estimate divides by (bytes per second); by default nominal ones:
// H100/H200-class HBM, PCIe 5.0 x16 host-to-device as measured in practice, and host memory read
// by the CPU. runtime/machine_bandwidths.h measures this machine's.
struct Bandwidths {
  double hbm = 3.0e12;
  double host_to_device = 52e9;
  double host = 60e9;
  std::string basis = "nominal bandwidths";  // how they were obtained, for the plan's report
};

struct PlannerInput {
  ModelConfig config;
  DType dtype = DType::BF16;    // of the weights, KV cache and activations on the GPUs
  int64_t max_context = 32768;  // tokens of prompt + generation
  // Continuous batching (ModelLimits): sequences at once, and the KV cache's tokens they share
  // (0: max_context).
  int max_sequences = 1;
  int64_t kv_cache_tokens = 0;
  int64_t max_pixels = 12845056;  // the largest image, in pixels after smart_resize; 0: text only
  // Merged tokens of all of a request's images, whose embeddings the workspace keeps while the
  // decoder runs; 0: those of one max_pixels image.
  int64_t request_image_tokens = 0;
  int patch_size = 14;  // from preprocessor_config.json
  int merge_size = 2;
  int64_t prefill_chunk = 2048;
  std::vector<MemoryBudget> budgets;  // --max-memory; a device not named may use what is free
  Offload offload = Offload::Auto;
  std::vector<GpuMemory> gpus;   // cuda:0, cuda:1, ...
  int64_t host_bytes = 0;        // the CPU's free memory, for when the budgets do not name it
  int64_t host_cache_bytes = 0;  // host memory a server's caches keep (image embeddings)
  // module name -> "cuda:N" | "cpu" | "stream"; empty: automatic placement. Every module named.
  std::map<std::string, std::string> device_map;
  Bandwidths bandwidths;
};

enum class Placement { Gpu, Stream, Cpu };

// Device buffers streamed modules take in turn (WeightPlacement::slots).
constexpr int64_t kStreamSlots = 2;
const char* placement_name(Placement placement);

struct PlacedModule {
  std::string name;
  int64_t weight_bytes = 0;
  Placement placement = Placement::Gpu;
  int gpu = -1;  // the GPU it runs on: resident there, or streamed through it; -1 on the CPU
};

enum class BudgetSource { Given, Free, Assumed };  // --max-memory, free memory, a GPU not here

struct DeviceUse {
  DeviceId device;
  int64_t budget = 0;
  BudgetSource source = BudgetSource::Free;
  int64_t weights = 0;    // resident modules
  int64_t kv_cache = 0;   // of the layers that run here
  int64_t workspace = 0;  // activations of a prefill chunk or an image, image embeddings
  int64_t state = 0;      // logits, sampling state (on the device of the last module)
  int64_t library = 0;    // CUDA: cuBLASLt workspace, staging twin, scratch; CPU: pinned staging
  int64_t streaming = 0;  // GPU: the two stream buffers; CPU: pinned copies of streamed modules
  int64_t caches = 0;     // CPU: a server's image-embedding cache
  int64_t total() const {
    return weights + kv_cache + workspace + state + library + streaming + caches;
  }
};

struct DecodeEstimate {
  int64_t resident_bytes = 0;  // read from GPU memory per token
  int64_t streamed_bytes = 0;  // copied host-to-device per token
  int64_t cpu_bytes = 0;       // read by the CPU per token
  double tokens_per_s = 0;     // an estimate from `bandwidths`, weights only, nothing overlapped
  Bandwidths bandwidths;
};

struct PlacementPlan {
  std::vector<PlacedModule> modules;  // forward order
  std::vector<DeviceUse> devices;     // the GPUs used, in order, then the CPU
  int64_t context_tokens = 0;         // the KV cache planned (max_context)
  int64_t kv_capacity_tokens = 0;     // the most the budgets would hold, the rest as planned
  int64_t image_tokens = 0;           // of a max_pixels image (merged tokens)
  int64_t largest_image_tokens = 0;   // the largest image whose workspace the budgets hold
  int64_t largest_image_pixels = 0;
  DecodeEstimate decode;
};

PlacementPlan plan_placement(const PlannerInput& input);

}  // namespace qwenvl
