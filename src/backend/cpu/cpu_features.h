#pragma once
// Which x86 vector instruction set the CPU kernels use. Binaries are built for baseline x86-64
// (no host-specific -march flag) so that one build runs on the AVX2-only developer machines and on
// the AVX-512 GPU host; the wider kernels are compiled with __attribute__((target(...))) and picked
// here at run time with __builtin_cpu_supports.
#include <string_view>

namespace qwenvl {

enum class CpuIsa { Scalar, Avx2, Avx512 };

std::string_view cpu_isa_name(CpuIsa isa);
// The best instruction set this CPU supports (Avx2 means AVX2 + FMA + F16C).
CpuIsa best_cpu_isa();
// The instruction set the kernels use now: best_cpu_isa(), or lower if QWENVL_CPU_ISA
// (scalar|avx2|avx512) or set_cpu_isa asked for it. Never throws.
CpuIsa active_cpu_isa();
// Selects the kernels (tests run every op once per instruction set). Throws Error if the CPU
// lacks `isa`.
void set_cpu_isa(CpuIsa isa);

}  // namespace qwenvl
