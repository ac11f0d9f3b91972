#!/usr/bin/env python3
"""qwenvl on quantized weights beside the same model in bf16, on full-size random checkpoints.

    python3 bench/quantized_bench.py [--models 3B,7B,32B-8L] [--variants bf16,awq,fp8]
                                     [--qwenvl build/qwenvl]

Variants: bf16 (the checkpoint as built), awq (the checkpoint quantized to 4-bit AWQ, group 128,
by `qwenvl quantize`, in the official format) and fp8 (`--quantize fp8` at load). Per variant:
decode tokens/s over --decode-tokens greedy tokens of a short prompt, the decode roofline (the
bytes a decode step reads, from the checkpoint's tensors as qwenvl holds them, over the HBM
bandwidth measured in this run: a device-to-device copy's bytes read + written per second), the fraction reached, and
the time to first token with a 1280x960 photo (best of --ttft-runs). 32B-8L: the official 32B
config cut to 8 of its 64 layers (a whole 32B checkpoint does not fit the GPU machine's disk); its
per-layer figures and `qwenvl plan` on the whole 32B and 72B AWQ configs (an 8,192-token context)
say what the full models need. Writes <gpu>-quantized-<models>.md/.json into --results-dir.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_common import (DEFAULT_QWENVL, REPO, checkpoint_weight_bytes, cut_config,  # noqa: E402
                          log, machine_info, make_photo, markdown_table, run_hf, run_qwenvl, slug,
                          today, write_results)

SHORT_PROMPT = "Write a short story about a lighthouse keeper."
GROUP = 128
GiB = 1024 ** 3


def awq_copy(binary, model_dir):
    out = "%s-awq%d" % (model_dir, GROUP)
    if not os.path.exists(os.path.join(out, "config.json")):
        t0 = time.time()
        subprocess.run([binary, "quantize", "--model", model_dir, "--out", out,
                        "--group-size", str(GROUP)], check=True)
        log("quantized %s in %.0f s" % (model_dir, time.time() - t0))
    return out


def fp8_decode_bytes(bf16_bytes, model_dir):
    """Decode bytes of the fp8 variant: the decoder's linear weights at one byte per element plus
    one fp32 scale per output row; the rest (embedding rows, lm_head, norms, biases) as in bf16."""
    import struct

    linear = rows = 0
    for f in os.listdir(model_dir):
        if not f.endswith(".safetensors"):
            continue
        with open(os.path.join(model_dir, f), "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for name, meta in header.items():
            if (name.startswith("model.") and ".layers." in name and name.endswith("proj.weight")
                    and "visual" not in name):
                linear += meta["data_offsets"][1] - meta["data_offsets"][0]
                rows += meta["shape"][0]
    return bf16_bytes - linear // 2 + rows * 4


def config_only_plan(binary, size, budget, max_pixels, root):
    """`qwenvl plan` on the official AWQ config of a whole model (no tensors needed)."""
    cfg_dir = os.path.join(root, "plan-%s-awq" % size)
    os.makedirs(cfg_dir, exist_ok=True)
    with open(os.path.join(REPO, "tests", "fixtures", "configs", size + ".json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": GROUP,
                                  "zero_point": True, "version": "gemm",
                                  "modules_to_not_convert": ["visual"]}
    with open(os.path.join(cfg_dir, "config.json"), "w") as f:
        json.dump(cfg, f)
    for name in ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json",
                 "generation_config.json"):
        src = os.path.join(REPO, "tests", "fixtures", "tokenizer", name)
        if os.path.exists(src):
            shutil.copy(src, cfg_dir)
    proc = subprocess.run([binary, "plan", "--model", cfg_dir, "--max-memory",
                           "cuda:0=%s" % budget, "--max-pixels", str(max_pixels), "--max-context",
                           "8192", "--json"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-400:]}
    return json.loads(proc.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="3B,7B")
    p.add_argument("--variants", default="bf16,awq,fp8")
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--decode-tokens", type=int, default=256)
    p.add_argument("--ttft-runs", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=560.0)
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = p.parse_args()
    t_start = time.time()
    models = [m for m in args.models.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    hw = run_hf(["--hardware"], timeout=180)
    read_GBps = hw["copy_GBps"]  # bytes read + written per second by a copy
    log("hardware: %s" % hw)
    from tools.build_random_checkpoint import ensure_checkpoint

    photo = make_photo(os.path.join(args.ckpt_root, "images", "1280x960.jpg"), 1280, 960)
    data, errors = {"hardware": hw, "runs": [], "plans": {}}, []
    for size in models:
        model_dir = os.path.join(args.ckpt_root, size)
        ensure_checkpoint(size.split("-")[0], model_dir, device="cuda",
                          config_path=cut_config(size, args.ckpt_root))
        bf16_bytes = checkpoint_weight_bytes(model_dir)["decode_per_token"]
        for variant in variants:
            if time.time() - t_start > args.budget_s - 60:
                errors.append("%s %s: skipped (time budget)" % (size, variant))
                continue
            try:
                run_dir, extra = model_dir, []
                if variant == "awq":
                    run_dir = awq_copy(args.qwenvl, model_dir)
                    decode_bytes = checkpoint_weight_bytes(run_dir)["decode_per_token"]
                elif variant == "fp8":
                    extra = ["--quantize", "fp8"]
                    decode_bytes = fp8_decode_bytes(bf16_bytes, model_dir)
                else:
                    decode_bytes = bf16_bytes
                decode = run_qwenvl(args.qwenvl, run_dir, SHORT_PROMPT, device="cuda",
                                    max_new_tokens=args.decode_tokens, extra=extra)
                ttfts = [run_qwenvl(args.qwenvl, run_dir, "Describe this image.", [photo],
                                    device="cuda", max_new_tokens=1, extra=extra)["ttft_ms"]
                         for _ in range(args.ttft_runs)]
                tps = decode["timings"]["decode_tokens_per_s"]
                bound = read_GBps * 1e9 / decode_bytes
                run = {"model": size, "variant": variant, "decode_tokens_per_s": tps,
                       "decode_bytes_per_token": decode_bytes, "bound_tokens_per_s": bound,
                       "of_bound": tps / bound, "ttft_ms": min(ttfts), "ttft_runs_ms": ttfts,
                       "weights_GBps": tps * decode_bytes / 1e9}
                data["runs"].append(run)
                log("%s %s: %s" % (size, variant, json.dumps(run)))
            except Exception as exc:
                errors.append("%s %s: %s" % (size, variant, exc))
                log(errors[-1])
    for size, budget, pixels in (("32B", "24GiB", 1003520), ("72B", "80GiB", 12845056)):
        plan = config_only_plan(args.qwenvl, size, budget, pixels, args.ckpt_root)
        data["plans"]["%s-AWQ cuda:0=%s" % (size, budget)] = plan

    def fmt(v, spec="%.1f"):
        return spec % v if isinstance(v, (int, float)) else "—"

    base = {(r["model"]): r for r in data["runs"] if r["variant"] == "bf16"}
    rows = []
    for r in data["runs"]:
        b = base.get(r["model"])
        rows.append([r["model"], r["variant"], fmt(r["decode_tokens_per_s"]),
                     fmt(r["decode_tokens_per_s"] / b["decode_tokens_per_s"], "%.2fx") if b else "—",
                     fmt(r["decode_bytes_per_token"] / GiB, "%.2f"), fmt(r["bound_tokens_per_s"]),
                     fmt(r["of_bound"] * 100, "%.0f%%"), fmt(r["weights_GBps"], "%.0f"),
                     fmt(r["ttft_ms"], "%.0f"),
                     fmt(r["ttft_ms"] / b["ttft_ms"], "%.2fx") if b else "—"])
    info = machine_info()
    md = ["# Quantized weights: qwenvl AWQ int4 and FP8 beside bf16", "",
          "- %s, commit %s; %s" % (today(), info.get("commit"), info.get("gpu")),
          "- HBM %.0f GB/s (a device-to-device copy's reads + writes per second, measured in this run); "
          "bound = that / decode bytes per token" % read_GBps,
          "- decode: %d greedy tokens of a short prompt; TTFT: 1280x960 photo, best of %d; "
          "awq: `qwenvl quantize --group-size %d` of the same random checkpoint"
          % (args.decode_tokens, args.ttft_runs, GROUP), "",
          markdown_table(["model", "variant", "decode tok/s", "vs bf16", "decode GiB/token",
                          "bound tok/s", "of bound", "weights GB/s", "TTFT ms", "TTFT vs bf16"],
                         rows), ""]
    md += ["## Whole models planned from their configs (`qwenvl plan`, AWQ)", ""]
    for name, plan in data["plans"].items():
        if "error" in plan:
            md.append("- %s: %s" % (name, plan["error"]))
        else:
            md.append("- %s: %s" % (name, json.dumps(plan)[:600]))
    md.append("")
    if errors:
        md += ["## Errors and skips", ""] + ["- " + e for e in errors] + [""]
    write_results(slug(hw["gpu"]) + "-quantized-" + "-".join(models), "\n".join(md), data,
                  args.results_dir)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
