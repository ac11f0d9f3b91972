#pragma once
// What the CUDA backend reserves beside the model's three regions (weights, persistent state,
// workspace), as constants without a CUDA header, so the runtime's memory planner can count them
// on a machine without a GPU.
#include <cstddef>

namespace qwenvl {

// cuBLASLt's workspace: what its documentation suggests on Hopper.
inline constexpr size_t kCublasWorkspaceBytes = size_t(32) << 20;
// Split-K partials of decode attention (7B: 4 MB).
inline constexpr size_t kAttentionScratchBytes = size_t(16) << 20;
// The pinned host staging ring of uploads, and its twin on the device where raw chunks land
// before a conversion kernel writes them to their destination.
inline constexpr int kStagingSlots = 4;
inline constexpr size_t kStagingSlotBytes = size_t(8) << 20;
inline constexpr size_t kStagingBytes = kStagingSlots * kStagingSlotBytes;
// GPU sampling's scratch is sized for vocabularies up to this many entries.
inline constexpr int kMaxSampleVocab = 1 << 18;
// An upper bound of that scratch (cuda::sample_scratch_bytes(kMaxSampleVocab): four f32 and one
// byte array of the vocabulary plus cub's radix-sort space, about 6.3 MiB), for planning only.
inline constexpr size_t kSampleScratchBoundBytes = size_t(8) << 20;
// The uploaded rotary tables.
inline constexpr size_t kRopeTableBytes = size_t(64) << 10;

// Everything above that lives on the device, per GPU the backend runs on.
inline constexpr size_t kCudaFixedDeviceBytes = kCublasWorkspaceBytes + kStagingBytes +
                                                kAttentionScratchBytes + kSampleScratchBoundBytes +
                                                kRopeTableBytes;

}  // namespace qwenvl
