#!/usr/bin/env python3
"""qwenvl with `--quantize fp8` against qwenvl bf16, on the random full-size checkpoints.

    python3 bench/fp8_bench.py --sizes 3B,7B --qwenvl build/qwenvl \
        --ckpt-root /tmp/qwenvl-bench --results-dir $OUT

Per size (the checkpoint of tools/build_random_checkpoint.py, as bench/gpu_bench.py builds it),
two prompts, each generated once by each engine (bf16, then fp8) for --tokens greedy tokens with
--dump-logits, so both engines run in the same call on the same GPU:
- image: a 1280x960 photo and "Describe this image.": time to first token (preprocess, vision,
  prefill; load excluded);
- text: a short prompt: decode tokens/s at a short context.
Per prompt: rel L2 of fp8's last-prompt-position logits against bf16's, whether their argmax is
equal and how many of their top 5 agree, the greedy agreement (tokens equal before the first
difference, and the share of equal positions), and fp8/bf16 ratios of TTFT, decode speed and the
weight bytes loaded (the memory plan's). Writes <results-dir>/<gpu>-fp8-<sizes>.md and .json.
About a minute per size on an H100 once the checkpoint exists (4 loads of the model).
"""

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_QWENVL, REPO, RESULTS_DIR, fmt, log, machine_info,  # noqa: E402
                          make_photo, markdown_table, ratio, run_qwenvl, slug, today,
                          write_results)

TEXT_PROMPT = "Write a short story about a robot learning to paint."
IMAGE_PROMPT = "Describe this image."
ENGINES = (("bf16", []), ("fp8", ["--quantize", "fp8"]))


def compare(a, b):
    """a against the reference b: rel L2 (float64), same argmax, top-5 overlap."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    top = lambda x: set(np.argsort(-x)[:5].tolist())  # noqa: E731
    return {"rel_l2": float(np.linalg.norm(a - b) / np.linalg.norm(b)),
            "argmax_equal": bool(a.argmax() == b.argmax()),
            "top5_overlap": len(top(a) & top(b))}


def agreement(a, b):
    """Greedy tokens equal before the first difference, and the share of equal positions."""
    n = min(len(a), len(b))
    prefix = next((i for i in range(n) if a[i] != b[i]), n)
    same = sum(1 for i in range(n) if a[i] == b[i])
    return {"prefix": prefix, "equal_share": same / n if n else None, "tokens": n}


def run_case(args, model_dir, case, engine, extra, tmp):
    import numpy as np

    path = os.path.join(tmp, "%s_%s.npy" % (case["name"], engine))
    summary = run_qwenvl(args.qwenvl, model_dir, case["prompt"], case["images"], device="cuda",
                         max_new_tokens=args.tokens,
                         extra=["--dtype", "bf16", "--dump-logits", path] + extra, timeout=600)
    t = summary.get("timings", {})
    return {"logits": np.load(path).astype(np.float32),
            "tokens": summary.get("tokens", []),
            "ttft_ms": summary.get("ttft_ms"),
            "decode_tokens_per_s": t.get("decode_tokens_per_s"),
            "load_ms": t.get("load_ms"),
            "weight_bytes": (summary.get("memory_plan") or {}).get("resident_weight_bytes"),
            "prompt_tokens": summary.get("prompt_tokens")}


def check_size(size, args, cases, tmp):
    from tools.build_random_checkpoint import ensure_checkpoint

    model_dir = os.path.join(args.ckpt_root, size)
    ensure_checkpoint(size, model_dir, device="cuda")
    result = {}
    for case in cases:
        runs, r = {}, {}
        for engine, extra in ENGINES:
            try:
                runs[engine] = run_case(args, model_dir, case, engine, extra, tmp)
                log("%s %s %s: ttft %.1f ms, decode %s tok/s, weights %s bytes" % (
                    size, case["name"], engine, runs[engine]["ttft_ms"],
                    fmt(runs[engine]["decode_tokens_per_s"]), runs[engine]["weight_bytes"]))
            except Exception as exc:
                r["error_%s" % engine] = str(exc)[:600]
                log("%s %s %s: FAILED %s" % (size, case["name"], engine, exc))
        for engine, run in runs.items():
            r[engine] = {k: v for k, v in run.items() if k not in ("logits", "tokens")}
        if len(runs) == 2:
            r["logits"] = compare(runs["fp8"]["logits"], runs["bf16"]["logits"])
            r["greedy"] = agreement(runs["fp8"]["tokens"], runs["bf16"]["tokens"])
            log("%s %s: fp8 vs bf16 logits %s, greedy %s" % (size, case["name"], r["logits"],
                                                              r["greedy"]))
        result[case["name"]] = r
    return result


def markdown(results, info, args):
    lines = ["# qwenvl --quantize fp8 vs bf16 (random full-size checkpoints)", "",
             "%s, %s, commit %s; %d greedy tokens per prompt, each engine run once per prompt "
             "in the same call. fp8: the decoder's projections as FP8 E4M3 with per-channel "
             "scales, quantized at load; the rest bf16." % (today(), info.get("gpu"),
                                                            info.get("commit"), args.tokens), ""]
    rows = []
    for size, cases in results.items():
        for name, r in cases.items():
            b, f = r.get("bf16", {}), r.get("fp8", {})
            logits, greedy = r.get("logits", {}), r.get("greedy", {})
            rows.append([size, name, logits.get("rel_l2") and "%.4f" % logits["rel_l2"],
                         logits.get("argmax_equal"), logits.get("top5_overlap"),
                         greedy.get("prefix"),
                         greedy.get("equal_share") and "%.2f" % greedy["equal_share"],
                         b.get("ttft_ms"), f.get("ttft_ms"),
                         ratio(f.get("ttft_ms"), b.get("ttft_ms")),
                         b.get("decode_tokens_per_s"), f.get("decode_tokens_per_s"),
                         ratio(f.get("decode_tokens_per_s"), b.get("decode_tokens_per_s")),
                         ratio(f.get("weight_bytes"), b.get("weight_bytes"))])
    lines.append(markdown_table(
        ["size", "prompt", "logits rel L2", "argmax =", "top-5", "greedy prefix", "greedy equal",
         "TTFT bf16 ms", "TTFT fp8 ms", "fp8/bf16", "decode bf16 tok/s", "decode fp8 tok/s",
         "fp8/bf16", "weights fp8/bf16"], rows))
    errors = ["- %s %s%s: %s" % (size, name, k[len("error"):].replace("_", " "), v)
              for size, cases in results.items() for name, r in cases.items()
              for k, v in r.items() if k.startswith("error")]
    if errors:
        lines += ["", "Errors:"] + errors
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="3B")
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--results-dir", default=RESULTS_DIR)
    p.add_argument("--tokens", type=int, default=256)
    args = p.parse_args()
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    image = make_photo(os.path.join(args.ckpt_root, "images", "ttft_1280x960.jpg"), 1280, 960)
    cases = [{"name": "image_1280x960", "prompt": IMAGE_PROMPT, "images": [image]},
             {"name": "text", "prompt": TEXT_PROMPT, "images": []}]
    info = machine_info()
    sizes = [s for s in args.sizes.split(",") if s]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            try:
                results[size] = check_size(size, args, cases, tmp)
            except Exception as exc:
                results[size] = {"checkpoint": {"error": str(exc)[:600]}}
                log("%s: FAILED %s" % (size, exc))
    md = markdown(results, info, args)
    print(md)
    gpu = (info.get("gpu") or "").split(",")[0]
    write_results("%s-fp8-%s" % (slug(gpu), "-".join(sizes)), md,
                  {"machine": info, "tokens": args.tokens, "results": results},
                  args.results_dir)
    failed = any("error" in k for cases in results.values() for r in cases.values() for k in r)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
