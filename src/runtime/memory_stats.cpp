#include "runtime/memory_stats.h"

#include <fstream>
#include <sstream>
#include <string>

namespace qwenvl {

size_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) != 0) continue;
    std::istringstream fields(line.substr(6));
    size_t kib = 0;
    fields >> kib;  // "VmHWM:   123456 kB"
    return kib * 1024;
  }
  return 0;
}

}  // namespace qwenvl
