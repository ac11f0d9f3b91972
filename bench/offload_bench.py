#!/usr/bin/env python3
"""qwenvl under GPU memory budgets (weights streamed from pinned host memory) vs transformers'
device_map="auto" + max_memory, on full-size random checkpoints.

    python3 bench/offload_bench.py [--models 3B,7B] [--qwenvl build/qwenvl]
                                   [--engines qwenvl,transformers]

Scenarios (issue 21's table): 3B under cuda:0=4GiB, 7B under cuda:0=8GiB (decode of a short prompt
and time to first token with a 1280x960 photo), 7B under cuda:0=24GiB with a 3840x2160 screenshot
at the default max_pixels beside the same request without a budget. Per run: decode tokens/s,
TTFT, the GPU memory the driver saw qwenvl take after its CUDA context (cudaMemGetInfo, at the end
of the run: every allocation is made at load), the plan's prediction for that device, and the
decode bound: streamed bytes per token / host-to-device bandwidth + resident bytes / HBM
bandwidth, both measured in this run. Writes <gpu>-offload.md/.json into --results-dir.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_QWENVL, REPO, cut_config, log, machine_info, make_photo,  # noqa: E402
                          markdown_table, run_hf, run_qwenvl, slug, today, write_results)

SHORT_PROMPT = "Write a short story about a lighthouse keeper."
GiB = 1024 ** 3

# (model, budget or None, case name, image size or None, new tokens)
SCENARIOS = [
    ("3B", None, "decode", None, 128),
    ("3B", "4GiB", "decode", None, 128),
    ("3B", "4GiB", "ttft_1280x960", (1280, 960), 1),
    # The budget check: a max_pixels image's prefill, then 1,000 decode steps.
    ("3B", "4GiB", "max_pixels_1000_steps", (4096, 3136), 1000),
    ("7B", None, "decode", None, 128),
    ("7B", "8GiB", "decode", None, 64),
    ("7B", "8GiB", "ttft_1280x960", (1280, 960), 1),
    ("7B", None, "ttft_3840x2160", (3840, 2160), 1),
    ("7B", "24GiB", "ttft_3840x2160", (3840, 2160), 1),
    # 32B with 16 of its 64 layers, for per-layer figures (a whole 32B checkpoint does not fit the
    # GPU machine's disk), under a budget keeping about the share of layers resident that
    # cuda:0=24GiB keeps of the whole model.
    ("32B-16L", None, "decode", None, 64),
    ("32B-16L", "10GiB", "decode", None, 32),
]


def gpu_used_bytes():
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total",
                          "--format=csv,noheader,nounits", "-i", "0"],
                         capture_output=True, text=True).stdout.split(",")
    return int(out[0]) * 2 ** 20, int(out[1]) * 2 ** 20


class MemoryWatch:
    """The driver's used memory of GPU 0, polled while a run lasts (nvidia-smi, ~10 times a
    second): its peak above what was used before the run is the process's whole footprint,
    CUDA context included."""

    def __enter__(self):
        self.before, self.total = gpu_used_bytes()
        self.peak = self.before
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()
        return self

    def poll(self):
        while not self.stop.wait(0.1):
            self.peak = max(self.peak, gpu_used_bytes()[0])

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def qwenvl_case(binary, model_dir, budget, image, tokens):
    extra = ["--verbose"] + (["--max-memory", "cuda:0=%s" % budget] if budget else [])
    with MemoryWatch() as watch:
        r = run_qwenvl(binary, model_dir, SHORT_PROMPT if not image else "Describe this image.",
                       [image] if image else [], device="cuda", max_new_tokens=tokens,
                       extra=extra)
    t = r["timings"]
    plan = r.get("memory_plan", {})
    gm = r.get("gpu_memory") or {}
    return {
        "decode_tokens_per_s": t.get("decode_tokens_per_s"),
        "ttft_ms": r["ttft_ms"], "vision_ms": t.get("vision_ms"), "prefill_ms": t.get("prefill_ms"),
        "load_ms": t.get("load_ms"),
        "used_bytes": gm.get("used_since_context_bytes"),
        "used_after_load_bytes": gm.get("used_after_load_bytes"),
        "used_after_warm_up_bytes": gm.get("used_after_warm_up_bytes"),
        # The process's peak as the driver saw it, less its CUDA context and libraries (what the
        # GPU's total less qwenvl's free memory at start says they took).
        "driver_peak_bytes": watch.peak - watch.before,
        "context_bytes": (watch.total - watch.before - gm["free_after_context_bytes"]
                          if gm.get("free_after_context_bytes") else None),
        "planned_bytes": (plan.get("planned") or {}).get("gpu_bytes"),
        "streamed_bytes_per_token": (plan.get("planned") or {}).get("streamed_bytes_per_token"),
        "resident_bytes_per_token": (plan.get("planned") or {}).get("resident_bytes_per_token"),
        "streamed_layers": plan.get("streamed_layers"),
        "streamed_vision": plan.get("streamed_vision_blocks"),
        "prompt_tokens": r.get("prompt_tokens"),
    }


def hf_case(model_dir, budget, cases, time_left):
    scen = [{"name": c[2], "images": [c[3]] if c[3] else [],
             "prompt": SHORT_PROMPT if not c[3] else "Describe this image.",
             "max_new_tokens": c[4], "kind": "decode"} for c in cases]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(scen, f)
    args = ["--model", model_dir, "--device", "cuda", "--dtype", "bf16", "--attn", "sdpa",
            "--scenarios", f.name]
    if budget:
        args += ["--max-memory", budget]
    return run_hf(args, timeout=max(60, int(time_left())))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="3B,7B")
    p.add_argument("--engines", default="qwenvl,transformers")
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--hf-tokens", type=int, default=8,
                   help="transformers' decode tokens under a budget (it runs at ~1 token/s)")
    p.add_argument("--budget-s", type=float, default=570.0)
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = p.parse_args()
    t_start = time.time()

    def time_left():
        return args.budget_s - (time.time() - t_start)

    engines = set(args.engines.split(","))
    models = [m for m in args.models.split(",") if m]
    hw = run_hf(["--hardware"], timeout=180)
    log("hardware: %s" % hw)
    from tools.build_random_checkpoint import ensure_checkpoint

    image_dir = os.path.join(args.ckpt_root, "images")
    rows, data, errors = [], {"hardware": hw, "runs": []}, []
    for size in models:
        model_dir = os.path.join(args.ckpt_root, size)
        ensure_checkpoint(size.split("-")[0], model_dir, device="cuda",
                          config_path=cut_config(size, args.ckpt_root))
        cases = [c for c in SCENARIOS if c[0] == size]
        for (_, budget, name, wh, tokens) in cases:
            if "qwenvl" not in engines or time_left() < 40:
                continue
            image = make_photo(os.path.join(image_dir, "%dx%d.jpg" % wh), *wh) if wh else None
            try:
                q = qwenvl_case(args.qwenvl, model_dir, budget, image, tokens)
            except Exception as exc:
                errors.append("%s %s %s: %s" % (size, budget, name, exc))
                log(errors[-1])
                continue
            bound = None
            if q["streamed_bytes_per_token"] is not None:
                seconds = (q["streamed_bytes_per_token"] / (hw["h2d_GBps"] * 1e9) +
                           (q["resident_bytes_per_token"] or 0) / (hw["copy_GBps"] / 2 * 1e9))
                bound = 1 / seconds if seconds > 0 else None
            q.update({"engine": "qwenvl", "model": size, "budget": budget, "case": name,
                      "bound_tokens_per_s": bound})
            data["runs"].append(q)
            log("qwenvl %s %s %s: %s" % (size, budget, name, json.dumps(q)))
        if "transformers" in engines:
            for budget in sorted({c[1] for c in cases if c[1] in ("4GiB", "8GiB")}):
                if time_left() < 120:
                    errors.append("%s transformers %s: skipped (time budget)" % (size, budget))
                    continue
                hcases = [(c[0], c[1], c[2], c[3] and os.path.join(image_dir, "%dx%d.jpg" % c[3]),
                           min(c[4], args.hf_tokens)) for c in cases
                          if c[1] == budget and "max_pixels" not in c[2]]
                try:
                    h = hf_case(model_dir, budget, hcases, time_left)
                    for s in h["scenarios"]:
                        s.update({"engine": "transformers", "model": size, "budget": budget,
                                  "case": s["name"]})
                        data["runs"].append(s)
                except Exception as exc:
                    errors.append("%s transformers %s: %s" % (size, budget, exc))
                    log(errors[-1])

    def fmt(v, spec="%.1f"):
        return spec % v if isinstance(v, (int, float)) else "—"

    budget_rows = []
    for r in data["runs"]:
        if r["engine"] == "qwenvl" and r.get("driver_peak_bytes") and r.get("context_bytes"):
            over_context = r["driver_peak_bytes"] - r["context_bytes"]
            budget_bytes = float(r["budget"][:-3]) * GiB if r["budget"] else None
            budget_rows.append([r["model"], r["budget"] or "none", r["case"],
                                fmt(r["context_bytes"] / GiB, "%.2f"),
                                fmt(r["driver_peak_bytes"] / GiB, "%.2f"),
                                fmt(over_context / GiB, "%.2f"),
                                ("yes" if over_context <= budget_bytes else "NO")
                                if budget_bytes else "—"])
    for r in data["runs"]:
        used = r.get("used_bytes") or r.get("peak_allocated_bytes")
        planned = r.get("planned_bytes")
        rows.append([r["model"], r["engine"], r["budget"] or "none", r["case"],
                     fmt(r.get("decode_tokens_per_s"), "%.2f"),
                     fmt(r.get("bound_tokens_per_s"), "%.1f"),
                     fmt(r["decode_tokens_per_s"] / r["bound_tokens_per_s"] * 100, "%.0f%%")
                     if r.get("bound_tokens_per_s") and r.get("decode_tokens_per_s") else "—",
                     fmt(r.get("ttft_ms"), "%.0f"),
                     fmt(used / GiB if used else None, "%.2f"),
                     fmt(planned / GiB if planned else None, "%.2f"),
                     fmt((planned - used) / used * 100 if planned and used else None, "%+.1f%%"),
                     str(r.get("streamed_layers", "—")) + ("+vision" if r.get("streamed_vision")
                                                           else "")])
    info = machine_info()
    md = ["# GPU memory budgets: qwenvl streaming vs transformers device_map='auto'", "",
          "- %s, commit %s; %s" % (today(), info.get("commit"), info.get("gpu")),
          "- measured in this run: host-to-device %.1f GB/s (pinned, 1 GB copies), "
          "device copy %.0f GB/s" % (hw["h2d_GBps"], hw["copy_GBps"]),
          "- bound = 1 / (streamed bytes per token / host-to-device + resident bytes per token / "
          "HBM read); GPU used: qwenvl's cudaMemGetInfo difference after its CUDA context "
          "(transformers: torch.cuda.max_memory_allocated); plan: the planner's total for cuda:0",
          "- transformers decodes %d tokens under a budget (about 1 token/s); 32B-16L: the 32B config "
          "cut to 16 layers, qwenvl only" % args.hf_tokens, "",
          markdown_table(["model", "engine", "budget", "case", "decode tok/s", "bound tok/s",
                          "of bound", "TTFT ms", "GPU used GiB", "plan GiB", "plan vs used",
                          "streamed layers"], rows), ""]
    md += ["## The driver's view (nvidia-smi, polled during each run)", "",
           "Peak: the process's whole footprint; context: the CUDA context and the libraries' "
           "kernels, taken before qwenvl's first allocation (the budgets count what comes after).",
           "", markdown_table(["model", "budget", "case", "context GiB", "peak GiB",
                               "peak less context GiB", "within budget"], budget_rows), ""]
    if errors:
        md += ["## Errors and skips", ""] + ["- " + e for e in errors] + [""]
    write_results(slug(hw["gpu"]) + "-offload-" + "-".join(models), "\n".join(md), data, args.results_dir)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
