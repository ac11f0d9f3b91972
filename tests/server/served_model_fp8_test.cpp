// `qwenvl serve --quantize fp8`: the served model loads with FP8 projections (fewer weight bytes
// than the 16-bit one), and a value it does not know is refused before anything loads.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "server/served_model.h"

namespace qwenvl {
namespace {

ServeOptions tiny_options(const std::string& quantize) {
  ServeOptions options;
  options.model_dir = std::string(QWENVL_FIXTURES_DIR) + "/models/tiny-tied";
  options.device = "cpu";
  options.max_context = 256;
  options.max_pixels = 64 * 28 * 28;
  options.quantize = quantize;
  return options;
}

TEST(ServedModelFp8, LoadsFp8ProjectionsAndRefusesUnknownValues) {
  const auto fp8 = load_served_model(tiny_options("fp8"));
  const auto plain = load_served_model(tiny_options(""));
  EXPECT_TRUE(fp8->files.config.quantization.fp8_at_load);
  EXPECT_FALSE(plain->files.config.quantization.fp8_at_load);
  const auto weights = [](const ServedModel& s) {
    return Qwen25VL::plan(s.files.config, *s.checkpoint, DType::BF16, s.limits).weight_bytes;
  };
  EXPECT_LT(weights(*fp8), weights(*plain));
  EXPECT_THROW(load_served_model(tiny_options("int4")), Error);
}

}  // namespace
}  // namespace qwenvl
