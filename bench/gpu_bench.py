#!/usr/bin/env python3
"""qwenvl (CUDA) vs transformers (bf16, sdpa, CUDA) on full-size random checkpoints.

    python3 bench/gpu_bench.py [--models 3B,7B] [--only ttft,images,decode,hardware]
                               [--engines qwenvl,transformers] [--qwenvl build/qwenvl]

Per model: TTFT for a short text prompt and for 1280x960, 2048x2048 and max_pixels-sized photos
(load excluded; decode + preprocess + vision + prefill + first token); decode tokens/s over
--decode-tokens greedy tokens at a short context and at ~--long-context tokens; peak GPU memory
above the weights. In the same run: device-to-device copy bandwidth (4 GB) and bf16 GEMM
throughput (8192^3), from which the decode roofline (weight + KV bytes per token / bandwidth) and
the prefill roofline (2 * decoder params * tokens / GEMM rate) follow. Writes
bench/results/<gpu>-<models>.md and .json (<gpu>-<models>-quick without transformers' rows),
replacing the previous run's; the date and commit are inside.

One device call is 10 minutes: a first 7B build takes ~1-2 min, each model ~3-4 min after that;
run one model per call (`--models 3B`, then `--models 7B`) when time is short. Checkpoints are kept
under --ckpt-root and reused while the machine stays warm.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_QWENVL, REPO, checkpoint_weight_bytes, log,  # noqa: E402
                          figures_of, long_prompt, machine_info, make_photo, markdown_table,
                          ratio, run_hf, run_qwenvl, slug, today, write_results)

TOKENIZER_JSON = os.path.join(REPO, "tests", "fixtures", "tokenizer", "tokenizer.json")
SHORT_PROMPT = "Write a short story about a lighthouse keeper."


def build_scenarios(only, image_dir, decode_tokens, long_context):
    cases = []
    if "ttft" in only:
        cases.append({"name": "ttft_text", "images": [], "prompt": SHORT_PROMPT,
                      "max_new_tokens": 1, "kind": "ttft"})
    if "images" in only:
        for name, (w, h) in [("ttft_1280x960", (1280, 960)), ("ttft_2048x2048", (2048, 2048)),
                             ("ttft_max_pixels", (4096, 3136))]:
            image = make_photo(os.path.join(image_dir, "%s.jpg" % name), w, h)
            cases.append({"name": name, "images": [image], "prompt": "Describe this image.",
                          "max_new_tokens": 1, "kind": "ttft"})
    if "decode" in only:
        cases.append({"name": "decode_short", "images": [], "prompt": SHORT_PROMPT,
                      "max_new_tokens": decode_tokens, "kind": "decode"})
        cases.append({"name": "decode_%dk" % (long_context // 1024), "images": [],
                      "prompt": long_prompt(long_context, TOKENIZER_JSON),
                      "max_new_tokens": decode_tokens, "kind": "decode"})
    return cases


def kv_bytes_per_token_of_context(model_dir):
    """K and V of every layer for one position, bf16."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    text = cfg.get("text_config", cfg)
    heads = text["num_attention_heads"]
    head_dim = text.get("head_dim") or text["hidden_size"] // heads
    return text["num_hidden_layers"] * 2 * text["num_key_value_heads"] * head_dim * 2


def model_section(size, model_dir, cases, q, h, hf_meta, hw):
    weights = checkpoint_weight_bytes(model_dir)
    kv_per_pos = kv_bytes_per_token_of_context(model_dir)
    bw = hw.get("copy_GBps")
    tflops = hw.get("gemm_bf16_TFLOPs")
    lines = ["## Qwen2.5-VL-%s (random bf16 weights, %.2f GB; decoder reads %.2f GB per token)"
             % (size, weights["total"] / 1e9, weights["decode_per_token"] / 1e9), ""]
    ttft_rows = []
    for case in cases:
        if case["kind"] != "ttft":
            continue
        qs, hs = q.get(case["name"]) or {}, h.get(case["name"]) or {}
        qt = qs.get("timings", {})
        prompt = qs.get("prompt_tokens") or hs.get("prompt_tokens")
        q_prefill = qs.get("prefill_tokens_per_s")
        roof = None
        if tflops and prompt:
            params = weights["decode_per_token"] / 2  # bf16 bytes -> parameters
            roof = tflops * 1e12 / (2 * params)  # tokens/s if prefill were pure GEMM at peak
        ttft_rows.append([case["name"], prompt, qt.get("preprocess_ms"), qt.get("vision_ms"),
                          qt.get("prefill_ms"), qs.get("ttft_ms"), hs.get("ttft_ms"),
                          ratio(hs.get("ttft_ms"), qs.get("ttft_ms")),
                          ("%.0f%%" % (100 * q_prefill / roof)) if q_prefill and roof else "—"])
    if ttft_rows:
        lines += ["### Time to first token (ms, load excluded)", "",
                  markdown_table(["case", "prompt tokens", "qwenvl preprocess", "qwenvl vision",
                                  "qwenvl prefill", "qwenvl TTFT", "transformers TTFT",
                                  "speedup", "qwenvl prefill / GEMM roofline"], ttft_rows), ""]
    dec_rows = []
    for case in cases:
        if case["kind"] != "decode":
            continue
        qs, hs = q.get(case["name"]) or {}, h.get(case["name"]) or {}
        prompt = qs.get("prompt_tokens") or hs.get("prompt_tokens") or 0
        q_tps = (qs.get("timings") or {}).get("decode_tokens_per_s")
        h_tps = hs.get("decode_tokens_per_s")
        roof = None
        if bw:
            ctx = prompt + case["max_new_tokens"] / 2
            roof = bw * 1e9 / (weights["decode_per_token"] + kv_per_pos * ctx)
        dec_rows.append([case["name"], prompt, q_tps, h_tps, ratio(q_tps, h_tps), roof,
                         ("%.0f%%" % (100 * q_tps / roof)) if q_tps and roof else "—",
                         ("%.0f%%" % (100 * h_tps / roof)) if h_tps and roof else "—"])
    if dec_rows:
        lines += ["### Decode (tokens/s, greedy, EOS ignored)", "",
                  markdown_table(["case", "prompt tokens", "qwenvl", "transformers", "speedup",
                                  "roofline", "qwenvl / roofline", "transformers / roofline"],
                                 dec_rows), ""]
    mem_rows = []
    hf_weights = hf_meta.get("weights_bytes")
    for case in cases:
        qs, hs = q.get(case["name"]) or {}, h.get(case["name"]) or {}
        q_peak = (qs.get("peak_memory_bytes") or {}).get("cuda")
        h_peak = hs.get("peak_allocated_bytes")
        q_above = (q_peak - weights["total"]) / 1e9 if q_peak else None
        h_above = (h_peak - hf_weights) / 1e9 if h_peak and hf_weights else None
        # qwenvl's cache holds exactly the request's context (prompt + new tokens).
        kv = kv_per_pos * (qs["prompt_tokens"] + case["max_new_tokens"]) / 1e9 if qs else None
        q_above_kv = q_above - kv if q_above is not None and kv is not None else None
        mem_rows.append([case["name"], q_above, kv, q_above_kv, h_above,
                         ratio(h_above, q_above)])
    lines += ["### Peak GPU memory above the weights (GB)", "",
              "qwenvl: backend high-water mark (every allocation it made: weights, KV cache, "
              "workspace, cuBLASLt workspace, staging, scratch) minus the checkpoint's bytes, and "
              "the same without its KV cache; transformers: torch.cuda.max_memory_allocated() "
              "minus memory allocated after loading.", "",
              markdown_table(["case", "qwenvl", "qwenvl KV cache", "qwenvl without KV",
                              "transformers", "transformers / qwenvl"], mem_rows), ""]
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="3B,7B")
    p.add_argument("--only", default="ttft,images,decode,hardware")
    p.add_argument("--ttft-runs", type=int, default=3,
                   help="qwenvl processes per time-to-first-token case; the median is reported")
    p.add_argument("--engines", default="qwenvl,transformers")
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--decode-tokens", type=int, default=256)
    p.add_argument("--long-context", type=int, default=8192)
    p.add_argument("--budget-s", type=float, default=570.0,
                   help="stop starting new runs after this many seconds")
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = p.parse_args()
    only = set(args.only.split(","))
    engines = set(args.engines.split(","))
    t_start = time.time()

    def time_left():
        return args.budget_s - (time.time() - t_start)

    hw, errors, data = {}, [], {"models": {}}
    if "hardware" in only:
        try:
            hw = run_hf(["--hardware"], timeout=180)
            log("hardware: %s" % hw)
        except Exception as exc:
            errors.append("hardware: %s" % exc)
    from tools.build_random_checkpoint import ensure_checkpoint

    image_dir = os.path.join(args.ckpt_root, "images")
    cases = build_scenarios(only, image_dir, args.decode_tokens, args.long_context)
    info = machine_info()
    md = []
    for size in [s for s in args.models.split(",") if s]:
        model_dir = os.path.join(args.ckpt_root, size)
        try:
            ensure_checkpoint(size, model_dir, device="cuda")
        except Exception as exc:
            errors.append("%s checkpoint: %s" % (size, exc))
            continue
        q, h, hf_meta = {}, {}, {}
        if "qwenvl" in engines:
            for case in cases:
                if time_left() < 30:
                    errors.append("%s qwenvl %s: skipped (time budget)" % (size, case["name"]))
                    continue
                try:
                    # A time to first token includes the host's image decoding, which varies by
                    # milliseconds from one process to the next: the median of a few runs.
                    runs = [run_qwenvl(args.qwenvl, model_dir, case["prompt"], case["images"],
                                       device="cuda", max_new_tokens=case["max_new_tokens"],
                                       timeout=max(30, int(time_left())))
                            for _ in range(args.ttft_runs if case["kind"] == "ttft" else 1)]
                    runs.sort(key=lambda r: r["ttft_ms"])
                    q[case["name"]] = figures_of(runs[len(runs) // 2])
                    q[case["name"]]["ttft_runs_ms"] = [r["ttft_ms"] for r in runs]
                    log("qwenvl %s %s: ttft %.1f ms, timings %s" % (
                        size, case["name"], q[case["name"]]["ttft_ms"],
                        json.dumps(q[case["name"]].get("timings"))))
                except Exception as exc:
                    errors.append("%s qwenvl %s: %s" % (size, case["name"], exc))
                    log(errors[-1])
        if "transformers" in engines and time_left() > 60:
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(cases, f)
            try:
                hf = run_hf(["--model", model_dir, "--device", "cuda", "--dtype", "bf16",
                             "--attn", "sdpa", "--scenarios", f.name],
                            timeout=max(60, int(time_left())))
                hf_meta = {k: v for k, v in hf.items() if k != "scenarios"}
                for s in hf["scenarios"]:
                    h[s["name"]] = s
                    if "error" in s:
                        errors.append("%s transformers %s: %s" % (size, s["name"], s["error"]))
            except Exception as exc:
                errors.append("%s transformers: %s" % (size, exc))
                log(errors[-1])
        elif "transformers" in engines:
            errors.append("%s transformers: skipped (time budget)" % size)
        data["models"][size] = {"qwenvl": q, "transformers": h, "transformers_meta": hf_meta,
                                "weights": checkpoint_weight_bytes(model_dir)}
        md += model_section(size, model_dir, cases, q, h, hf_meta, hw)

    gpu = hw.get("gpu") or (info.get("gpu") or "gpu").split(",")[0]
    head = ["# GPU: qwenvl vs transformers on %s" % gpu, "",
            "- %s, commit %s; %s" % (today(), info.get("commit"), info.get("gpu")),
            "- measured in this run: device-to-device copy %s GB/s (4 GB, read+write), "
            "bf16 GEMM 8192^3 %s TFLOP/s" % (
                ("%.0f" % hw["copy_GBps"]) if hw.get("copy_GBps") else "—",
                ("%.0f" % hw["gemm_bf16_TFLOPs"]) if hw.get("gemm_bf16_TFLOPs") else "—"),
            "- transformers: bf16, sdpa, CUDA, KV-cached greedy loop without generate(); "
            "qwenvl: `generate --device cuda --json --temperature 0 --ignore-eos`; its time to "
            "first token is the median of %d processes (first request after load)" % args.ttft_runs,
            "- decode roofline = copy bandwidth / (decoder weight bytes + KV bytes at the mean "
            "context) per token; prefill roofline = GEMM rate / (2 x decoder params) per token",
            ""]
    md = head + md
    if errors:
        md += ["## Errors and skips", ""] + ["- " + e for e in errors] + [""]
    md.append("Total bench time: %.0f s" % (time.time() - t_start))
    markdown = "\n".join(md) + "\n"
    print(markdown, flush=True)
    data.update({"machine": info, "hardware": hw, "errors": errors, "cases": [
        {k: v for k, v in c.items() if k != "prompt"} for c in cases]})
    name = "%s-%s" % (slug(gpu), args.models.replace(",", "-"))
    if "transformers" not in engines:
        name += "-quick"
    write_results(name, markdown, data, args.results_dir)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
