#include "runtime/memory_planner.h"

#include <algorithm>
#include <optional>

#include "backend/backend.h"
#include "backend/fixed_costs.h"
#include "core/error.h"
#include "model/qwen2_5_vl.h"
#include "runtime/byte_size.h"
#include "runtime/model_modules.h"
#include "vision/preprocess.h"

namespace qwenvl {

Offload parse_offload(const std::string& text) {
  if (text == "stream") return Offload::Stream;
  if (text == "cpu") return Offload::Cpu;
  if (text == "auto") return Offload::Auto;
  fail("--offload: expected stream, cpu or auto, got '", text, "'");
}

const char* offload_name(Offload offload) {
  return offload == Offload::Stream ? "stream" : offload == Offload::Cpu ? "cpu" : "auto";
}

const char* placement_name(Placement placement) {
  return placement == Placement::Gpu ? "gpu" : placement == Placement::Stream ? "stream" : "cpu";
}

namespace {

// The sizes placement works with, from the planner's input.
struct Sizes {
  const PlannerInput& in;
  std::vector<ModelModule> modules;
  int64_t unit = 0;          // pixels per merged image token: (patch * merge)^2
  int64_t image_tokens = 0;  // of a max_pixels image
  int64_t kv_layer_gpu = 0, kv_layer_cpu = 0;
  int64_t state = 0;

  explicit Sizes(const PlannerInput& input)
      : in(input), modules(model_modules(input.config, input.dtype)) {
    unit = int64_t(in.patch_size) * in.merge_size * in.patch_size * in.merge_size;
    image_tokens = in.max_pixels / unit;
    ModelLimits limits;
    limits.max_context = in.max_context;
    limits.kv_cache_tokens = in.kv_cache_tokens;
    limits.max_sequences = in.max_sequences;
    const int64_t kv_tokens = kv_cache_capacity(limits);
    kv_layer_gpu = int64_t(kv_cache_layer_bytes(in.config.text, kv_tokens, in.dtype));
    kv_layer_cpu = int64_t(kv_cache_layer_bytes(in.config.text, kv_tokens, DType::F32));
    state = int64_t(sampling_state_bytes(in.config.text, limits));
  }

  // The workspace of a device that runs the vision tower on images of `tokens` merged tokens (0:
  // only the decoder), in `dtype`.
  int64_t workspace(int64_t tokens, DType dtype) const {
    ModelLimits limits;
    limits.max_context = in.max_context;
    limits.prefill_chunk = in.prefill_chunk;
    limits.max_image_tokens = std::max(tokens, in.request_image_tokens);
    limits.max_image_patches = tokens * in.merge_size * in.merge_size;
    return int64_t(Qwen25VL::workspace_bytes(in.config, dtype, limits));
  }
  // A layer's keys and values on the device it runs on (the CPU computes in f32).
  int64_t kv(size_t m, Placement where) const {
    if (modules[m].layer < 0) return 0;
    return where == Placement::Cpu ? kv_layer_cpu : kv_layer_gpu;
  }
  // What module m brings to the device it runs on beside its weights: its KV share, and for the
  // final module the sampling state.
  int64_t extra(size_t m, Placement where) const {
    return kv(m, where) + (m + 1 == modules.size() ? state : 0);
  }
};

std::string module_list(const std::vector<ModelModule>& modules) {
  const int layers = int(std::count_if(modules.begin(), modules.end(),
                                       [](const ModelModule& m) { return m.layer >= 0; }));
  std::string s = "visual, model.embed_tokens, model.layers.0";
  if (layers > 1) s += cat("-", layers - 1);
  s += ", model.norm";
  if (modules.back().name == "lm_head") s += ", lm_head";
  return s;
}

struct Budgets {
  std::vector<DeviceUse> gpus;  // every GPU, budget and source set
  DeviceUse cpu;
};

Budgets device_budgets(const PlannerInput& in) {
  Budgets b;
  for (size_t g = 0; g < in.gpus.size(); ++g) {
    DeviceUse d;
    d.device = {DeviceKind::CUDA, int(g)};
    d.budget = in.gpus[g].bytes;
    d.source = in.gpus[g].assumed ? BudgetSource::Assumed : BudgetSource::Free;
    b.gpus.push_back(d);
  }
  b.cpu.device = {DeviceKind::CPU, 0};
  b.cpu.budget = in.host_bytes;
  b.cpu.caches = in.host_cache_bytes;
  for (const MemoryBudget& budget : in.budgets) {
    if (budget.device.kind == DeviceKind::CPU) {
      b.cpu.budget = budget.bytes;
      b.cpu.source = BudgetSource::Given;
      continue;
    }
    if (size_t(budget.device.index) >= b.gpus.size())
      fail("--max-memory names ", device_name(budget.device), ", but there ",
           b.gpus.size() == 1 ? "is 1 GPU" : cat("are ", b.gpus.size(), " GPUs"));
    DeviceUse& d = b.gpus[size_t(budget.device.index)];
    if (d.source == BudgetSource::Assumed) {
      d.budget = budget.bytes;
    } else if (budget.bytes <= d.budget) {  // a budget above the free memory cannot be used
      d.budget = budget.bytes;
      d.source = BudgetSource::Given;
    }
  }
  return b;
}

// Where each module runs: a placement and, for the GPU ones and streamed ones, a GPU.
using Assignment = std::vector<PlacedModule>;

// What every device holds under `a`.
Budgets device_use(const Sizes& s, Budgets b, const Assignment& a) {
  const size_t n = a.size();
  int64_t largest_streamed = 0;
  std::vector<bool> runs(b.gpus.size(), false);
  for (size_t m = 0; m < n; ++m) {
    const PlacedModule& p = a[m];
    if (p.placement == Placement::Cpu) {
      b.cpu.weights += p.weight_bytes;
      b.cpu.kv_cache += s.kv(m, Placement::Cpu);
      if (m + 1 == n) b.cpu.state += s.state;
      continue;
    }
    DeviceUse& d = b.gpus[size_t(p.gpu)];
    runs[size_t(p.gpu)] = true;
    if (p.placement == Placement::Gpu) d.weights += p.weight_bytes;
    if (p.placement == Placement::Stream) {
      const ModelModule& module = s.modules[m];
      d.weights += module.weight_bytes - module.streamed_bytes;  // what stays resident
      b.cpu.streaming += module.streamed_bytes;
      largest_streamed = std::max(largest_streamed, module.stream_group_bytes);
    }
    d.kv_cache += s.kv(m, Placement::Gpu);
    if (m + 1 == n) d.state += s.state;
  }
  // A tied lm_head is the embedding matrix, which the last module's device (model.norm's: lm_head
  // has no module of its own then) holds a second time when the embedding runs elsewhere. The
  // CPU reads it where the checkpoint maps it.
  const auto embed = std::find_if(
      a.begin(), a.end(), [](const PlacedModule& p) { return p.name == "model.embed_tokens"; });
  const PlacedModule& head = a.back();
  if (head.name == "model.norm" && embed != a.end() && head.placement == Placement::Gpu &&
      (embed->placement != Placement::Gpu || embed->gpu != head.gpu))
    b.gpus[size_t(head.gpu)].weights += embed->weight_bytes;
  // The vision tower's GPU holds the image workspace (the embeddings stay there for the
  // decoder's first chunks); the others a prefill chunk's.
  const int vision_gpu = a.front().placement == Placement::Cpu ? -1 : a.front().gpu;
  bool any_gpu = false;
  for (size_t g = 0; g < b.gpus.size(); ++g) {
    if (!runs[g]) continue;
    any_gpu = true;
    DeviceUse& d = b.gpus[g];
    d.library = int64_t(kCudaFixedDeviceBytes);
    d.workspace = s.workspace(int(g) == vision_gpu ? s.image_tokens : 0, s.in.dtype);
    for (const PlacedModule& p : a)
      if (p.placement == Placement::Stream && p.gpu == int(g))
        d.streaming = kStreamSlots * largest_streamed;
  }
  const bool any_cpu = std::any_of(
      a.begin(), a.end(), [](const PlacedModule& p) { return p.placement == Placement::Cpu; });
  if (any_cpu) b.cpu.workspace = s.workspace(vision_gpu < 0 ? s.image_tokens : 0, DType::F32);
  if (any_gpu) b.cpu.library = int64_t(kStagingBytes);
  return b;
}

// The largest image (merged tokens) whose workspace fits on `d` beside what else it holds.
int64_t largest_image(const Sizes& s, const DeviceUse& d, DType dtype) {
  const int64_t base = d.total() - d.workspace;
  int64_t lo = 0, hi = kMaxResizedPixels / s.unit;
  if (base + s.workspace(0, dtype) > d.budget) return 0;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (base + s.workspace(mid, dtype) <= d.budget)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// The Error for a GPU whose budget does not hold what must be there whatever the placement: the
// CUDA buffers, the workspaces, then the KV cache and the stream buffers reserved on it.
[[noreturn]] void fail_reserved(const Sizes& s, const DeviceUse& d, bool vision, int64_t kv,
                                int64_t streaming) {
  const std::string name = device_name(d.device);
  const std::string budget = cat(name, "'s budget of ", format_bytes(d.budget));
  const int64_t base = int64_t(kCudaFixedDeviceBytes) + s.workspace(0, s.in.dtype);
  if (base > d.budget)
    fail_resource(budget, " does not hold the workspaces (", format_bytes(base),
                  "): raise it or lower --max-context");
  if (vision) {
    DeviceUse probe = d;
    probe.library = int64_t(kCudaFixedDeviceBytes);
    probe.workspace = s.workspace(s.image_tokens, s.in.dtype);
    const int64_t need = int64_t(kCudaFixedDeviceBytes) + probe.workspace;
    if (need > d.budget) {
      probe.weights = probe.kv_cache = probe.state = probe.streaming = 0;
      const int64_t fits = largest_image(s, probe, s.in.dtype);
      fail_resource("an image of --max-pixels ", s.in.max_pixels, " needs ",
                    format_count(s.image_tokens), " tokens; ", budget, " fits ", format_count(fits),
                    ": use --max-pixels ", fits * s.unit, " or more memory");
    }
  }
  const int64_t workspaces =
      int64_t(kCudaFixedDeviceBytes) + s.workspace(vision ? s.image_tokens : 0, s.in.dtype);
  if (workspaces + kv > d.budget)
    fail_resource(budget, " does not hold the KV cache of ", format_count(s.in.max_context),
                  " tokens (", format_bytes(kv), ") beside the workspaces (",
                  format_bytes(workspaces), "): raise it or lower --max-context");
  fail_resource(budget, " does not hold the two buffers to stream the modules that do not fit (",
                format_bytes(streaming), ") beside the workspaces and the KV cache (",
                format_bytes(workspaces + kv), "): raise it or use --offload cpu");
}

// Fills the GPUs in forward order; what is left runs on the CPU (--offload cpu).
Assignment fill_in_order(const Sizes& s, const Budgets& b) {
  const size_t n = s.modules.size();
  Assignment a(n);
  for (size_t m = 0; m < n; ++m) {
    a[m].name = s.modules[m].name;
    a[m].weight_bytes = s.modules[m].weight_bytes;
    a[m].placement = Placement::Cpu;
  }
  size_t next = 0;
  for (size_t g = 0; g < b.gpus.size() && next < n; ++g) {
    const DeviceUse& d = b.gpus[g];
    const int64_t reserved =
        int64_t(kCudaFixedDeviceBytes) + s.workspace(next == 0 ? s.image_tokens : 0, s.in.dtype);
    if (d.budget <= 0 || reserved > d.budget) continue;  // a GPU too small to hold anything
    int64_t used = reserved;
    for (; next < n; ++next) {
      const int64_t need = s.modules[next].weight_bytes + s.extra(next, Placement::Gpu);
      if (used + need > d.budget) break;
      used += need;
      a[next].placement = Placement::Gpu;
      a[next].gpu = int(g);
    }
  }
  return a;
}

// The modules to stream, in the order they are given up: the vision tower first (it runs once
// per image, so streaming it costs no decode time), then the decoder layers from the last.
std::vector<size_t> stream_candidates(const Sizes& s) {
  std::vector<size_t> order;
  for (size_t m = 0; m < s.modules.size(); ++m)
    if (s.modules[m].streamable() && s.modules[m].layer < 0) order.push_back(m);
  for (size_t m = s.modules.size(); m-- > 0;)
    if (s.modules[m].streamable() && s.modules[m].layer >= 0) order.push_back(m);
  return order;
}

// Streamed modules run on the last GPU with a budget, which holds their KV share, their resident
// parts and the stream buffers; the others fill the GPUs in forward order. Returns the
// assignment, or nothing when some module that does not stream finds no room (why: in *why).
std::optional<Assignment> fill_streaming(const Sizes& s, const Budgets& b,
                                         const std::vector<bool>& streamed, std::string* why) {
  const size_t n = s.modules.size();
  std::vector<int> order;
  for (const DeviceUse& d : b.gpus)
    if (d.budget > 0) order.push_back(d.device.index);
  if (order.empty()) {
    *why = "there is no GPU to stream through: use --offload cpu";
    return std::nullopt;
  }
  const int last = order.back();
  Assignment a(n);
  int64_t largest_group = 0, streamed_extras = 0;
  for (size_t m = 0; m < n; ++m) {
    a[m].name = s.modules[m].name;
    a[m].weight_bytes = s.modules[m].weight_bytes;
    a[m].placement = Placement::Cpu;
    if (!streamed[m]) continue;
    a[m].placement = Placement::Stream;
    a[m].gpu = last;
    largest_group = std::max(largest_group, s.modules[m].stream_group_bytes);
    streamed_extras +=
        s.extra(m, Placement::Gpu) + s.modules[m].weight_bytes - s.modules[m].streamed_bytes;
  }
  const bool vision_streams = streamed[0];
  size_t next = 0;
  auto skip_streamed = [&] {
    while (next < n && streamed[next]) ++next;
  };
  skip_streamed();
  for (int g : order) {
    const DeviceUse& d = b.gpus[size_t(g)];
    const bool vision = g == last ? vision_streams || next == 0 : next == 0;
    int64_t used = int64_t(kCudaFixedDeviceBytes) +
                   s.workspace(vision ? s.image_tokens : 0, s.in.dtype) +
                   (g == last ? kStreamSlots * largest_group + streamed_extras : 0);
    if (used > d.budget) {
      if (g != last) continue;
      fail_reserved(s, d, vision, streamed_extras, kStreamSlots * largest_group);
    }
    for (; next < n; ++next, skip_streamed()) {
      const int64_t need = s.modules[next].weight_bytes + s.extra(next, Placement::Gpu);
      if (used + need > d.budget) break;
      used += need;
      a[next].placement = Placement::Gpu;
      a[next].gpu = g;
    }
  }
  skip_streamed();
  if (next < n) {
    *why = cat(device_name(b.gpus[size_t(last)].device), "'s budget of ",
               format_bytes(b.gpus[size_t(last)].budget), " does not hold ", s.modules[next].name,
               " (", format_bytes(s.modules[next].weight_bytes),
               ", which cannot stream) beside the streamed modules' buffers: raise it or use "
               "--offload cpu");
    return std::nullopt;
  }
  return a;
}

Assignment automatic(const Sizes& s, const Budgets& b) {
  if (s.in.offload == Offload::Cpu) return fill_in_order(s, b);
  // Stream as little as fits: give up one more candidate until the rest fits.
  std::vector<bool> streamed(s.modules.size(), false);
  std::string why;
  if (auto a = fill_streaming(s, b, streamed, &why)) return *a;
  for (size_t m : stream_candidates(s)) {
    streamed[m] = true;
    if (auto a = fill_streaming(s, b, streamed, &why)) return *a;
  }
  fail_resource(why);
}

Assignment from_device_map(const Sizes& s, const Budgets& b) {
  const auto& map = s.in.device_map;
  for (const auto& [name, device] : map) {
    const bool known = std::any_of(s.modules.begin(), s.modules.end(),
                                   [&](const ModelModule& m) { return m.name == name; });
    if (!known)
      fail("--device-map: unknown module '", name, "' (this model has ", module_list(s.modules),
           ")");
  }
  Assignment a;
  int stream_gpu = -1;
  for (const ModelModule& m : s.modules) {
    auto it = map.find(m.name);
    if (it == map.end()) fail("--device-map does not place module '", m.name, "'");
    PlacedModule p{m.name, m.weight_bytes, Placement::Cpu, -1};
    if (it->second == "stream") {
      if (!m.streamable())
        fail("--device-map: ", m.name,
             " cannot stream (visual and model.layers.N can): put it on a GPU or the cpu");
      p.placement = Placement::Stream;
    } else if (it->second != "cpu") {
      const DeviceId device = parse_device(it->second, cat("--device-map for ", m.name));
      if (device.kind == DeviceKind::CPU) fail("--device-map: ", m.name, ": unexpected device");
      if (size_t(device.index) >= b.gpus.size())
        fail("--device-map puts ", m.name, " on ", device_name(device), ", but there ",
             b.gpus.size() == 1 ? "is 1 GPU" : cat("are ", b.gpus.size(), " GPUs"));
      p.placement = Placement::Gpu;
      p.gpu = device.index;
      stream_gpu = std::max(stream_gpu, device.index);
    }
    a.push_back(p);
  }
  // Streamed modules run on the last GPU the map uses (the first GPU when it uses none).
  for (PlacedModule& p : a) {
    if (p.placement != Placement::Stream) continue;
    if (b.gpus.empty()) fail("--device-map streams ", p.name, ", but there is no GPU");
    p.gpu = std::max(stream_gpu, 0);
  }
  return a;
}

void check_totals(const Budgets& use, bool from_map) {
  const std::string what = from_map ? "what --device-map puts there" : "what is placed there";
  for (const DeviceUse& d : use.gpus)
    if (d.total() > d.budget)
      fail_resource(device_name(d.device), "'s budget of ", format_bytes(d.budget),
                    " does not hold ", what, " (", format_bytes(d.total()),
                    "): raise it or place less there");
  if (use.cpu.total() > use.cpu.budget)
    fail_resource("the host needs ", format_bytes(use.cpu.total()),
                  " for the modules that do not fit on the GPUs, but the cpu's ",
                  use.cpu.source == BudgetSource::Given ? "budget" : "free memory", " is ",
                  format_bytes(use.cpu.budget), ": raise --max-memory cpu=SIZE or the GPUs'");
}

DecodeEstimate estimate_decode(const Sizes& s, const Assignment& a) {
  DecodeEstimate e;
  e.bandwidths = s.in.bandwidths;
  for (size_t m = 0; m < a.size(); ++m) {
    if (!s.modules[m].read_per_token) continue;
    const int64_t bytes = a[m].weight_bytes;
    if (a[m].placement == Placement::Stream) {
      e.streamed_bytes += s.modules[m].streamed_bytes;
      e.resident_bytes += bytes - s.modules[m].streamed_bytes;
    } else {
      (a[m].placement == Placement::Gpu ? e.resident_bytes : e.cpu_bytes) += bytes;
    }
  }
  const Bandwidths& bw = e.bandwidths;
  const double seconds = double(e.resident_bytes) / bw.hbm +
                         double(e.streamed_bytes) / bw.host_to_device +
                         double(e.cpu_bytes) / bw.host;
  e.tokens_per_s = seconds > 0 ? 1.0 / seconds : 0.0;
  return e;
}

// The most tokens of KV cache each device holding layers would take, the rest as planned.
int64_t kv_capacity(const Sizes& s, const Budgets& use) {
  const TextConfig& t = s.in.config.text;
  const int64_t per_layer_token = 2 * int64_t(t.num_key_value_heads) * t.head_dim;
  int64_t capacity = INT64_MAX;
  auto consider = [&](const DeviceUse& d, int64_t kv_layer, DType dtype) {
    const int64_t layers = d.kv_cache / kv_layer;
    if (layers == 0) return;
    const int64_t per_token =
        layers * per_layer_token * int64_t(dtype_size(dtype)) + (d.state ? 4 : 0);
    const int64_t fixed = d.total() - d.kv_cache - (d.state ? 4 * s.in.max_context : 0) +
                          layers * 2 * int64_t(kAllocationAlignment);
    capacity = std::min(capacity, std::max<int64_t>(0, (d.budget - fixed) / per_token));
  };
  for (const DeviceUse& d : use.gpus) consider(d, s.kv_layer_gpu, s.in.dtype);
  consider(use.cpu, s.kv_layer_cpu, DType::F32);
  // The cache is made of whole blocks, one of them the padding block of batched passes
  // (kv_cache_capacity).
  if (capacity == INT64_MAX) return 0;
  const int64_t padding = s.in.max_sequences > 1 ? kKvBlockSize : 0;
  return std::max<int64_t>(0, capacity / kKvBlockSize * kKvBlockSize - padding);
}

}  // namespace

PlacementPlan plan_placement(const PlannerInput& in) {
  if (in.dtype != DType::BF16 && in.dtype != DType::F16)
    fail("the memory plan is for bf16 or fp16 weights, not ", dtype_name(in.dtype));
  if (in.max_context < 1) fail("--max-context must be at least 1, got ", in.max_context);
  if (in.prefill_chunk < 1) fail("the prefill chunk must be at least 1 token");
  if (in.patch_size < 1 || in.merge_size < 1) fail("patch and merge sizes must be positive");
  if (in.max_pixels < 0 || in.max_pixels > kMaxResizedPixels)
    fail("--max-pixels must be in [0, ", kMaxResizedPixels, "], got ", in.max_pixels);
  const Sizes s(in);
  const Budgets b = device_budgets(in);
  const bool from_map = !in.device_map.empty();
  const Assignment a = from_map ? from_device_map(s, b) : automatic(s, b);
  const Budgets use = device_use(s, b, a);
  check_totals(use, from_map);

  PlacementPlan plan;
  plan.modules = a;
  for (const DeviceUse& d : use.gpus)
    if (d.total() > 0) plan.devices.push_back(d);
  plan.devices.push_back(use.cpu);
  plan.context_tokens = in.max_context;
  plan.kv_capacity_tokens = kv_capacity(s, use);
  plan.image_tokens = s.image_tokens;
  const bool vision_on_cpu = a.front().placement == Placement::Cpu;
  plan.largest_image_tokens = vision_on_cpu
                                  ? largest_image(s, use.cpu, DType::F32)
                                  : largest_image(s, use.gpus[size_t(a.front().gpu)], in.dtype);
  plan.largest_image_pixels = plan.largest_image_tokens * s.unit;
  plan.decode = estimate_decode(s, a);
  return plan;
}

}  // namespace qwenvl
