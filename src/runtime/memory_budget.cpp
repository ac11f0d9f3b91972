#include "runtime/memory_budget.h"

#include "core/error.h"
#include "runtime/byte_size.h"

namespace qwenvl {

namespace {
constexpr int kMaxDeviceIndex = 1023;
}  // namespace

std::string device_name(const DeviceId& device) {
  return device.kind == DeviceKind::CPU ? std::string("cpu") : cat("cuda:", device.index);
}

DeviceId parse_device(const std::string& text, const std::string& what) {
  if (text == "cpu") return {DeviceKind::CPU, 0};
  if (text == "cuda") return {DeviceKind::CUDA, 0};
  const std::string prefix = "cuda:";
  if (text.rfind(prefix, 0) == 0 && text.size() > prefix.size() &&
      text.size() <= prefix.size() + 4) {
    int index = 0;
    bool digits = true;
    for (size_t i = prefix.size(); i < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9') digits = false;
      index = index * 10 + (text[i] - '0');
    }
    if (digits && index <= kMaxDeviceIndex) return {DeviceKind::CUDA, index};
  }
  fail(what, ": unknown device '", text, "' (expected cpu or cuda:N)");
}

std::vector<MemoryBudget> parse_memory_budgets(const std::string& spec) {
  const std::string flag = "--max-memory";
  if (spec.empty()) fail(flag, ": expected DEVICE=SIZE[,DEVICE=SIZE...], got nothing");
  std::vector<MemoryBudget> out;
  size_t begin = 0;
  while (begin <= spec.size()) {
    size_t comma = spec.find(',', begin);
    if (comma == std::string::npos) comma = spec.size();
    const std::string entry = spec.substr(begin, comma - begin);
    if (entry.empty()) fail(flag, ": empty entry in '", spec, "' (expected DEVICE=SIZE)");
    const size_t eq = entry.find('=');
    if (eq == std::string::npos)
      fail(flag, ": '", entry, "' has no '=' (expected DEVICE=SIZE, such as cuda:0=20GiB)");
    const DeviceId device = parse_device(entry.substr(0, eq), flag);
    for (const MemoryBudget& b : out)
      if (b.device == device) fail(flag, ": ", device_name(device), " is named twice");
    out.push_back(
        {device, parse_byte_size(entry.substr(eq + 1), cat(flag, " for ", device_name(device)))});
    begin = comma + 1;
  }
  return out;
}

}  // namespace qwenvl
