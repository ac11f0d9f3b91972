#pragma once
// Index tensors (positions, window orders, cu_seqlens, cache slots) are computed on the host and
// copied into the workspace: model code never writes through a device tensor's pointer.
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace qwenvl {

// An I32 workspace tensor of `shape` (default: [values.size()]) holding `values`.
Tensor upload_indices(Backend& backend, const std::vector<int32_t>& values, Shape shape = {});

// Attention segments from host boundaries (cu_seqlens), with their launch bounds and leading
// single-query segments (AttentionSegments).
AttentionSegments make_segments(Backend& backend, const std::vector<int32_t>& cu_q,
                                const std::vector<int32_t>& cu_k, bool causal, float scale);

}  // namespace qwenvl
