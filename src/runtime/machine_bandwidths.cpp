#include "runtime/machine_bandwidths.h"

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "backend/backend.h"
#include "core/thread_pool.h"

namespace qwenvl {

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown CPU";
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char text[16] = {};
  std::strftime(text, sizeof text, "%Y-%m-%d", std::gmtime(&now));
  return text;
}

nlohmann::json read_cache(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nlohmann::json::object();
  nlohmann::json cache = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return cache.is_object() ? cache : nlohmann::json::object();
}

void write_cache(const std::string& path, const nlohmann::json& cache) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary);
    if (!out) return;
    out << cache.dump(2) << "\n";
    if (!out) return;
  }
  std::filesystem::rename(temporary, path, ec);  // whole or not at all
}

}  // namespace

std::string bandwidth_cache_path() {
  namespace fs = std::filesystem;
  if (const char* dir = std::getenv("QWENVL_CACHE_DIR"); dir && *dir)
    return (fs::path(dir) / "bandwidths.json").string();
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "qwenvl" / "bandwidths.json").string();
  if (const char* home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".cache" / "qwenvl" / "bandwidths.json").string();
  return "";
}

Bandwidths machine_bandwidths() {
  const std::string gpu = gpu_name();
  const std::string key = (gpu.empty() ? std::string("no GPU") : gpu) + " | " + cpu_model() +
                          " | " + std::to_string(ThreadPool::global().size()) + " threads";
  const std::string path = bandwidth_cache_path();
  nlohmann::json cache = path.empty() ? nlohmann::json::object() : read_cache(path);
  const Bandwidths nominal;
  Bandwidths out;
  const auto basis = [&](const std::string& how) {
    return gpu.empty() ? "host memory " + how + "; GPU figures nominal (no GPU here)"
                       : how + " on " + gpu;
  };
  if (auto it = cache.find(key); it != cache.end() && it->is_object()) {
    const nlohmann::json& e = *it;
    out.hbm = e.value("hbm", nominal.hbm);
    out.host_to_device = e.value("host_to_device", nominal.host_to_device);
    out.host = e.value("host", nominal.host);
    out.basis = basis("measured " + e.value("measured", std::string("earlier")) + " (cached in " +
                      path + ")");
    return out;
  }
  if (const std::optional<GpuBandwidths> measured = measure_gpu_bandwidths()) {
    out.hbm = measured->memory;
    out.host_to_device = measured->host_to_device;
  }
  out.host = measure_host_read_bandwidth();
  out.basis = basis("measured now (a quick probe)");
  if (!path.empty()) {
    cache[key] = {{"hbm", out.hbm},
                  {"host_to_device", out.host_to_device},
                  {"host", out.host},
                  {"measured", today()}};
    write_cache(path, cache);
  }
  return out;
}

}  // namespace qwenvl
