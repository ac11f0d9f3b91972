// `qwenvl quantize --model DIR --out DIR`: an AWQ checkpoint in the official Qwen2.5-VL-*-AWQ
// format made from a 16-bit one by round to nearest per group (checkpoint/awq_checkpoint.h), and
// optionally its dequantized twin, the reference an AWQ run is compared with.
#include <cstdio>
#include <string>

#include "checkpoint/awq_checkpoint.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"

namespace qwenvl::cli {

namespace {

constexpr const char* kUsage =
    "usage: qwenvl quantize --model DIR --out DIR [--group-size N]\n"
    "                       [--dequantized DIR [--dequantized-dtype f32|bf16|fp16]]\n"
    "  Writes DIR's decoder projections as 4-bit AWQ (GEMM layout, zero points, round to nearest\n"
    "  per group of --group-size inputs, default 128; no activation-aware search), everything\n"
    "  else as it is, into --out. --dequantized also writes the same model with the\n"
    "  dequantized weights (q - z) * s, in --dequantized-dtype (default f32).\n";

}  // namespace

int run_quantize(int argc, char** argv) {
  Args args(argc, argv, {"model", "out", "group-size", "dequantized", "dequantized-dtype"},
            {"help"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (!args.positional().empty())
    fail("unexpected argument '", args.positional().front(),
         "' (usage: quantize --model DIR --out DIR)");
  const int64_t group = args.get_int("group-size", 128, 2, 1 << 16);
  const DType dtype = parse_dtype(args.get("dequantized-dtype").value_or("f32"));
  write_awq_checkpoint(args.require("model"), group,
                       {args.require("out"), args.get("dequantized").value_or("")}, dtype);
  std::printf("wrote %s\n", args.require("out").c_str());
  return 0;
}

}  // namespace qwenvl::cli
