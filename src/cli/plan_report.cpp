#include "cli/plan_report.h"

#include <cstdio>

#include "core/error.h"
#include "core/file_read.h"
#include "runtime/byte_size.h"

namespace qwenvl::cli {

std::map<std::string, std::string> read_device_map(const std::string& path) {
  const std::string text = read_text_file(path, kMaxJsonFileBytes, "--device-map file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("--device-map file ", path, " is not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail("--device-map file ", path, " must hold one object {module: device}");
  std::map<std::string, std::string> map;
  for (const auto& [module, device] : j.items()) {
    if (device.is_number_unsigned()) {  // transformers' device_map names a GPU by its ordinal
      map[module] = cat("cuda:", device.get<uint64_t>());
    } else if (device.is_string()) {
      map[module] = device.get<std::string>();
    } else {
      fail("--device-map file ", path, ": the device of '", module,
           "' must be \"cuda:N\", N, \"cpu\" or \"stream\"");
    }
  }
  return map;
}

namespace {

std::string where(const PlacedModule& m) {
  if (m.placement == Placement::Cpu) return "cpu";
  const std::string gpu = cat("cuda:", m.gpu);
  return m.placement == Placement::Stream ? cat("stream (through ", gpu, ")") : gpu;
}

const char* source_name(BudgetSource s) {
  return s == BudgetSource::Given  ? "--max-memory"
         : s == BudgetSource::Free ? "free memory"
                                   : "--max-memory, a GPU not here";
}

}  // namespace

std::string plan_text(const std::string& dir, const PlannerInput& in, const PlacementPlan& plan) {
  std::string out;
  auto line = [&](const std::string& s) { out += s + "\n"; };
  line(cat("model      ", dir, " (", in.config.text.num_hidden_layers, " layers, ",
           in.dtype == DType::BF16 ? "bf16" : "fp16",
           in.config.quantization.fp8_at_load ? " (FP8 projections)" : "", " on the GPUs, offload ",
           offload_name(in.offload), in.device_map.empty() ? "" : ", --device-map", ")"));
  line("placement");
  // Consecutive layers in one place as one line: "model.layers.0-27 → cuda:0".
  for (size_t i = 0; i < plan.modules.size();) {
    size_t j = i + 1;
    const bool layer = plan.modules[i].name.rfind("model.layers.", 0) == 0;
    int64_t bytes = plan.modules[i].weight_bytes;
    while (layer && j < plan.modules.size() &&
           plan.modules[j].name.rfind("model.layers.", 0) == 0 &&
           where(plan.modules[j]) == where(plan.modules[i]))
      bytes += plan.modules[j++].weight_bytes;
    std::string name = plan.modules[i].name;
    if (j - i > 1) name += cat("-", plan.modules[j - 1].name.substr(13));
    char buf[160];
    std::snprintf(buf, sizeof buf, "  %-22s → %-24s %10s", name.c_str(),
                  where(plan.modules[i]).c_str(), format_bytes(bytes).c_str());
    line(buf);
    i = j;
  }
  line("memory per device");
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-7s %10s %10s %10s %10s %10s %10s %10s %10s %10s  %s",
                "device", "weights", "KV cache", "workspace", "state", "library", "streaming",
                "caches", "total", "budget", "(budget from)");
  line(buf);
  for (const DeviceUse& d : plan.devices) {
    std::snprintf(buf, sizeof buf, "  %-7s %10s %10s %10s %10s %10s %10s %10s %10s %10s  %s",
                  device_name(d.device).c_str(), format_bytes(d.weights).c_str(),
                  format_bytes(d.kv_cache).c_str(), format_bytes(d.workspace).c_str(),
                  format_bytes(d.state).c_str(), format_bytes(d.library).c_str(),
                  format_bytes(d.streaming).c_str(), format_bytes(d.caches).c_str(),
                  format_bytes(d.total()).c_str(), format_bytes(d.budget).c_str(),
                  source_name(d.source));
    line(buf);
  }
  line(
      "  library: the CUDA backend's cuBLASLt workspace, staging and scratch (cpu: pinned "
      "staging)");
  line("  streaming: the two buffers streamed modules pass through (cpu: their pinned copies)");
  line("  caches: the server's image-embedding cache (serve --image-cache)");
  line(cat("KV cache   ", format_count(plan.context_tokens), " tokens planned; the budgets hold ",
           format_count(plan.kv_capacity_tokens), " (--max-context)"));
  line(cat("images     ", format_count(plan.image_tokens), " tokens planned (--max-pixels ",
           format_count(in.max_pixels), "); the budgets hold up to ",
           format_count(plan.largest_image_tokens), " tokens (--max-pixels ",
           format_count(plan.largest_image_pixels), ")"));
  const DecodeEstimate& e = plan.decode;
  std::snprintf(
      buf, sizeof buf,
      "decode     about %.*f tokens/s, an estimate: per token %s read from GPU memory at %.1f "
      "TB/s, "
      "%s copied from the host at %.0f GB/s, %s read by the CPU at %.0f GB/s (weights only)",
      e.tokens_per_s < 10 ? 1 : 0, e.tokens_per_s, format_bytes(e.resident_bytes).c_str(),
      e.bandwidths.hbm / 1e12, format_bytes(e.streamed_bytes).c_str(),
      e.bandwidths.host_to_device / 1e9, format_bytes(e.cpu_bytes).c_str(),
      e.bandwidths.host / 1e9);
  line(buf);
  line(cat("           bandwidths ", e.bandwidths.basis));
  line(
      "           generate and serve run resident, streamed and CPU placements beside one GPU; "
      "several GPUs are planned only");
  return out;
}

nlohmann::json plan_json(const std::string& dir, const PlannerInput& in,
                         const PlacementPlan& plan) {
  nlohmann::ordered_json j;
  j["model"] = dir;
  j["dtype"] = in.dtype == DType::BF16 ? "bf16" : "fp16";
  if (in.config.quantization.fp8_at_load) j["quantize"] = "fp8";
  j["offload"] = offload_name(in.offload);
  j["device_map_given"] = !in.device_map.empty();
  j["max_context"] = in.max_context;
  j["max_pixels"] = in.max_pixels;
  nlohmann::ordered_json modules = nlohmann::ordered_json::array();
  for (const PlacedModule& m : plan.modules)
    modules.push_back({{"name", m.name},
                       {"placement", placement_name(m.placement)},
                       {"device", m.placement == Placement::Cpu ? "cpu" : cat("cuda:", m.gpu)},
                       {"weight_bytes", m.weight_bytes}});
  j["modules"] = modules;
  nlohmann::ordered_json devices = nlohmann::ordered_json::array();
  for (const DeviceUse& d : plan.devices)
    devices.push_back({{"device", device_name(d.device)},
                       {"budget_bytes", d.budget},
                       {"budget_from", source_name(d.source)},
                       {"weight_bytes", d.weights},
                       {"kv_cache_bytes", d.kv_cache},
                       {"workspace_bytes", d.workspace},
                       {"state_bytes", d.state},
                       {"library_bytes", d.library},
                       {"streaming_bytes", d.streaming},
                       {"cache_bytes", d.caches},
                       {"total_bytes", d.total()}});
  j["devices"] = devices;
  j["kv_capacity_tokens"] = plan.kv_capacity_tokens;
  j["image_tokens"] = plan.image_tokens;
  j["largest_image"] = {{"tokens", plan.largest_image_tokens},
                        {"pixels", plan.largest_image_pixels}};
  const DecodeEstimate& e = plan.decode;
  j["decode_estimate"] = {
      {"tokens_per_s", e.tokens_per_s},
      {"resident_bytes_per_token", e.resident_bytes},
      {"streamed_bytes_per_token", e.streamed_bytes},
      {"cpu_bytes_per_token", e.cpu_bytes},
      {"hbm_bytes_per_s", e.bandwidths.hbm},
      {"host_to_device_bytes_per_s", e.bandwidths.host_to_device},
      {"host_bytes_per_s", e.bandwidths.host},
      {"basis", "weights read once per token; bandwidths " + e.bandwidths.basis}};
  return j;
}

}  // namespace qwenvl::cli
