#pragma once
// Makes an AWQ checkpoint from a 16-bit one, in exactly the official Qwen2.5-VL-*-AWQ format
// (checkpoint/awq.h, quantization.h): every decoder projection quantized to 4 bits by round to
// nearest per group (no activation-aware search: random test weights have no salient channels),
// biases, norms, embeddings, lm_head and the vision tower copied as they are, config.json with
// its quantization_config. Reference data for tests and the GPU machine: the same model with the
// dequantized weights (q - z) * s as an f32 checkpoint computes what the AWQ one should.
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace qwenvl {

struct AwqCheckpointPaths {
  std::string awq_dir;          // the AWQ checkpoint (created)
  std::string dequantized_dir;  // "" or the dequantized f32 twin (created)
};

// Reads the checkpoint in src_dir; writes config.json, model.safetensors and src_dir's other
// files (tokenizer, processor and generation configs) into each output directory. The twin's
// dequantized projections are `dequantized_dtype`: f32 holds (q - z) * s exactly (the CPU
// comparison); bf16 or f16 round it once, as a 16-bit reference run would.
void write_awq_checkpoint(const std::string& src_dir, int64_t group_size,
                          const AwqCheckpointPaths& out, DType dequantized_dtype = DType::F32);

}  // namespace qwenvl
