// `--quantize` (checkpoint/quantization.h): fp8 marks a 16-bit checkpoint's decoder projections
// for conversion at load, and nothing else; any other value, or fp8 on a quantized checkpoint,
// is one clear error.
#include <gtest/gtest.h>

#include <string>

#include "checkpoint/quantization.h"
#include "core/error.h"

namespace qwenvl {
namespace {

std::string error_of(QuantizationConfig q, const std::string& value) {
  try {
    apply_quantize_option(q, value);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QuantizeOption, Fp8ConvertsTheDecoderProjectionsOnly) {
  QuantizationConfig q;
  apply_quantize_option(q, "fp8");
  EXPECT_TRUE(q.fp8_at_load);
  EXPECT_FALSE(q.awq());
  for (const char* module : {"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                             "model.layers.0.self_attn.v_proj", "model.layers.0.self_attn.o_proj",
                             "model.layers.27.mlp.gate_proj", "model.layers.27.mlp.up_proj",
                             "model.layers.27.mlp.down_proj"})
    EXPECT_TRUE(q.converts_to_fp8(module)) << module;
  for (const char* module :
       {"model.layers.0.input_layernorm", "model.layers.0.post_attention_layernorm",
        "model.embed_tokens", "lm_head", "model.norm", "visual.blocks.0.mlp.gate_proj",
        "visual.blocks.0.attn.qkv", "visual.merger.mlp.0"})
    EXPECT_FALSE(q.converts_to_fp8(module)) << module;
  // Nothing without the option; no quantization asked for leaves the config as it was.
  QuantizationConfig plain;
  apply_quantize_option(plain, "");
  EXPECT_FALSE(plain.fp8_at_load);
  EXPECT_FALSE(plain.converts_to_fp8("model.layers.0.mlp.down_proj"));
}

TEST(QuantizeOption, UnknownValuesAndQuantizedCheckpointsAreOneClearError) {
  for (const char* value : {"int8", "FP8", "fp4", "e5m2"}) {
    const std::string e = error_of({}, value);
    EXPECT_NE(e.find(std::string("--quantize ") + value + " is not supported"), std::string::npos)
        << e;
  }
  QuantizationConfig awq;
  awq.method = "awq";
  const std::string e = error_of(awq, "fp8");
  EXPECT_NE(e.find("--quantize fp8 needs a 16-bit checkpoint"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

}  // namespace
}  // namespace qwenvl
