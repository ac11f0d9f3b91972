#include "backend/cpu/cpu_features.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace qwenvl {

namespace {

bool cpu_supports(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Scalar:
      return true;
    case CpuIsa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case CpuIsa::Avx512:
      return cpu_supports(CpuIsa::Avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  }
  return false;
}

// QWENVL_CPU_ISA caps the instruction set (to compare kernels, or to work around a CPU bug).
// It is read lazily, possibly inside a worker thread where an exception would terminate the
// process, so an unknown value is reported on stderr and ignored rather than thrown.
CpuIsa initial_isa() {
  const CpuIsa best = best_cpu_isa();
  const char* env = std::getenv("QWENVL_CPU_ISA");
  if (!env || !*env) return best;
  const std::string_view name(env);
  CpuIsa asked;
  if (name == "scalar") {
    asked = CpuIsa::Scalar;
  } else if (name == "avx2") {
    asked = CpuIsa::Avx2;
  } else if (name == "avx512") {
    asked = CpuIsa::Avx512;
  } else {
    std::fprintf(stderr, "qwenvl: ignoring QWENVL_CPU_ISA=%s (expected scalar, avx2 or avx512)\n",
                 env);
    return best;
  }
  return int(asked) < int(best) ? asked : best;
}

std::atomic<CpuIsa>& active() {
  static std::atomic<CpuIsa> isa{initial_isa()};
  return isa;
}

}  // namespace

std::string_view cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Scalar:
      return "scalar";
    case CpuIsa::Avx2:
      return "avx2";
    case CpuIsa::Avx512:
      return "avx512";
  }
  return "?";
}

CpuIsa best_cpu_isa() {
  static const CpuIsa best = cpu_supports(CpuIsa::Avx512) ? CpuIsa::Avx512
                             : cpu_supports(CpuIsa::Avx2) ? CpuIsa::Avx2
                                                          : CpuIsa::Scalar;
  return best;
}

CpuIsa active_cpu_isa() { return active().load(std::memory_order_relaxed); }

void set_cpu_isa(CpuIsa isa) {
  if (!cpu_supports(isa)) fail("this CPU does not support the ", cpu_isa_name(isa), " kernels");
  active().store(isa, std::memory_order_relaxed);
}

}  // namespace qwenvl
