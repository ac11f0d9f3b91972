#include "runtime/memory_stats.h"

#include <fstream>
#include <sstream>
#include <string>

namespace qwenvl {

namespace {

// The "NAME:   123456 kB" line of a /proc file, in bytes; 0 if absent.
size_t proc_kib_field(const char* path, const std::string& name) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0) continue;
    std::istringstream fields(line.substr(name.size()));
    size_t kib = 0;
    fields >> kib;
    return kib * 1024;
  }
  return 0;
}

}  // namespace

size_t peak_rss_bytes() { return proc_kib_field("/proc/self/status", "VmHWM:"); }

size_t available_host_bytes() { return proc_kib_field("/proc/meminfo", "MemAvailable:"); }

}  // namespace qwenvl
