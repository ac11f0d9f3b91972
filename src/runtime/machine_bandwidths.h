#pragma once
// This machine's bandwidths for the memory plan's estimates: a quick probe (timed copies on GPU
// 0, the CPU threads streaming host memory; under a second in all), kept in a cache file so later
// runs reuse it. Without a GPU the device figures stay nominal, and the basis says so.
#include <string>

#include "runtime/memory_planner.h"

namespace qwenvl {

// The cache: $QWENVL_CACHE_DIR, else $XDG_CACHE_HOME/qwenvl, else $HOME/.cache/qwenvl; the file
// bandwidths.json there, one entry per (GPU, CPU, thread count). Empty when none of them is set.
std::string bandwidth_cache_path();

// Measured (or cached) bandwidths for this machine. A cache that cannot be read or written is
// skipped silently: the figures are then measured every time, never wrong.
Bandwidths machine_bandwidths();

}  // namespace qwenvl
