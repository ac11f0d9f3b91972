#pragma once
// `--max-memory` budgets: "cuda:0=20GiB,cpu=64GiB" names, per device, the most memory qwenvl may
// plan to use there. A device the list does not name may use what is free on it (the memory
// planner's input says how much that is).
#include <cstdint>
#include <string>
#include <vector>

namespace qwenvl {

enum class DeviceKind { CPU, CUDA };

struct DeviceId {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;  // the GPU's ordinal; 0 for the CPU
  bool operator==(const DeviceId&) const = default;
};

// "cuda:0", "cpu".
std::string device_name(const DeviceId& device);
// "cuda:N" (N in [0, 1023]) or "cpu" (also "cuda" for cuda:0), case-sensitive as transformers'
// device strings; an Error naming `what` otherwise.
DeviceId parse_device(const std::string& text, const std::string& what);

struct MemoryBudget {
  DeviceId device;
  int64_t bytes = 0;
};

// The comma-separated DEVICE=SIZE pairs of `spec` (sizes as parse_byte_size reads them), in the
// order given. An Error for an empty spec or entry, a missing '=', an unknown device, a device
// named twice, or a bad size.
std::vector<MemoryBudget> parse_memory_budgets(const std::string& spec);

}  // namespace qwenvl
