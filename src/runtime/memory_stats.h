#pragma once
// Peak memory of this process: resident host memory (VmHWM) and what the backend took.
#include <cstddef>

namespace qwenvl {

// Peak resident set size of this process in bytes (Linux /proc/self/status VmHWM); 0 if unknown.
size_t peak_rss_bytes();

}  // namespace qwenvl
