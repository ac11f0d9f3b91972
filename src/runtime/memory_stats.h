#pragma once
// Host memory: this process's peak (VmHWM) and what the machine has available.
#include <cstddef>

namespace qwenvl {

// Peak resident set size of this process in bytes (Linux /proc/self/status VmHWM); 0 if unknown.
size_t peak_rss_bytes();

// Host memory available to a new allocation (Linux /proc/meminfo MemAvailable) in bytes; 0 if
// unknown.
size_t available_host_bytes();

}  // namespace qwenvl
