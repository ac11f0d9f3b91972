#!/usr/bin/env python3
"""qwenvl on the CPU vs transformers (fp32, CPU) on a full-size random 3B checkpoint.

    python3 bench/cpu_bench.py [--qwenvl build/qwenvl] [--size 3B] [--threads 16]
                               [--only qwenvl,transformers] [--decode-tokens 32]

Builds (or reuses) the random checkpoint under --ckpt-root, makes a 1 MP photo, then measures for
each engine: preprocess and vision time for the image, prefill tokens/s, decode tokens/s over
--decode-tokens greedy tokens (EOS ignored), and peak RSS. Writes bench/results/<host>-cpu-<size>.md
and .json (<host>: the CPU model), replacing the previous run's; the date and commit are inside.
One run per engine after a warm-up; transformers runs in a child process.
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_QWENVL, REPO, figures_of, log, machine_info,  # noqa: E402
                          make_photo, markdown_table, ratio, run_hf, run_qwenvl, slug, today,
                          write_results)


def scenarios(image, decode_tokens):
    return [
        {"name": "image_1mp", "images": [image], "prompt": "Describe this image in detail.",
         "max_new_tokens": decode_tokens},
        {"name": "text_short", "images": [], "prompt": "Write a short poem about the sea.",
         "max_new_tokens": decode_tokens},
    ]


def gb(value):
    return None if value is None else value / 1e9


def build_table(q, h):
    """Rows of (metric, qwenvl, transformers, qwenvl advantage)."""
    rows = []
    for name in ("image_1mp", "text_short"):
        qs, hs = q.get(name) or {}, h.get(name) or {}
        qt = qs.get("timings", {})
        pairs = [
            ("preprocess ms (decode + resize + patchify)", qt.get("preprocess_ms"),
             hs.get("preprocess_ms"), "lower"),
            ("vision tower ms", qt.get("vision_ms"), hs.get("vision_ms"), "lower"),
            ("prefill tokens/s (decoder)", qs.get("prefill_tokens_per_s"),
             hs.get("prefill_tokens_per_s"), "higher"),
            ("TTFT ms (load excluded)", qs.get("ttft_ms"), hs.get("ttft_ms"), "lower"),
            ("decode tokens/s", qt.get("decode_tokens_per_s"), hs.get("decode_tokens_per_s"),
             "higher"),
        ]
        for label, a, b, better in pairs:
            if name == "text_short" and "vision" in label:
                continue
            adv = ratio(a, b) if better == "higher" else ratio(b, a)
            rows.append(["%s: %s" % (name, label), a, b, adv])
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--size", default="3B")
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--decode-tokens", type=int, default=32)
    p.add_argument("--image-size", default="1024x1024", help="WxH of the test photo")
    p.add_argument("--only", default="qwenvl,transformers")
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = p.parse_args()
    only = set(args.only.split(","))
    t_start = time.time()

    from tools.build_random_checkpoint import ensure_checkpoint

    model_dir = os.path.join(args.ckpt_root, args.size)
    import torch

    ensure_checkpoint(args.size, model_dir, device="cuda" if torch.cuda.is_available() else "cpu")
    w, h = (int(v) for v in args.image_size.lower().split("x"))
    image = make_photo(os.path.join(args.ckpt_root, "images", "photo_%dx%d.jpg" % (w, h)), w, h)
    cases = scenarios(image, args.decode_tokens)

    q_results, h_results, errors = {}, {}, []
    hf_meta = {}
    if "qwenvl" in only:
        for case in cases:
            try:
                q_results[case["name"]] = figures_of(run_qwenvl(
                    args.qwenvl, model_dir, case["prompt"], case["images"], device="cpu",
                    max_new_tokens=case["max_new_tokens"], threads=args.threads))
                log("qwenvl %s: %s" % (case["name"], json.dumps(q_results[case["name"]].get(
                    "timings"))))
            except Exception as exc:
                errors.append("qwenvl %s: %s" % (case["name"], exc))
                log(errors[-1])
    if "transformers" in only:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(cases, f)
        try:
            hf = run_hf(["--model", model_dir, "--device", "cpu", "--dtype", "fp32",
                         "--threads", str(args.threads), "--scenarios", f.name])
            hf_meta = {k: v for k, v in hf.items() if k != "scenarios"}
            for s in hf["scenarios"]:
                h_results[s["name"]] = s
                if "error" in s:
                    errors.append("transformers %s: %s" % (s["name"], s["error"]))
        except Exception as exc:
            errors.append("transformers: %s" % exc)
            log(errors[-1])

    info = machine_info()
    rows = build_table(q_results, h_results)
    q_rss = max((r.get("peak_memory_bytes", {}).get("cpu") or 0 for r in q_results.values()),
                default=None)
    rows.append(["peak RSS GB", gb(q_rss) if q_rss else None, gb(hf_meta.get("peak_rss_bytes")),
                 ratio(hf_meta.get("peak_rss_bytes"), q_rss) if q_rss else "—"])
    q_load = [r["timings"].get("load_ms") for r in q_results.values() if "timings" in r]
    rows.append(["load ms", q_load[0] if q_load else None, hf_meta.get("load_ms"),
                 ratio(hf_meta.get("load_ms"), q_load[0]) if q_load else "—"])
    md = ["# CPU: qwenvl vs transformers, Qwen2.5-VL-%s (random weights)" % args.size, "",
          "- %s, commit %s; machine: %s, %s cores" % (today(), info.get("commit"),
                                                       info.get("cpu"), info.get("cores")),
          "- qwenvl: `--device cpu --threads %d`, bf16 weights from the checkpoint" % args.threads,
          "- transformers %s / torch %s: fp32 on CPU, %s threads, %s attention, %s" % (
              hf_meta.get("transformers"), hf_meta.get("torch"), hf_meta.get("threads"),
              hf_meta.get("attn"), hf_meta.get("processor")),
          "- image: %dx%d JPEG; prompt tokens (qwenvl / transformers): %s / %s" % (
              w, h, (q_results.get("image_1mp") or {}).get("prompt_tokens"),
              (h_results.get("image_1mp") or {}).get("prompt_tokens")),
          "- decode: %d greedy tokens, EOS ignored; advantage = how many times better qwenvl is"
          % args.decode_tokens, "",
          markdown_table(["metric", "qwenvl", "transformers", "qwenvl advantage"], rows), ""]
    if errors:
        md += ["## Errors", ""] + ["- " + e for e in errors] + [""]
    md.append("Total bench time: %.0f s" % (time.time() - t_start))
    markdown = "\n".join(md) + "\n"
    print(markdown, flush=True)
    write_results("%s-cpu-%s" % (slug(info.get("cpu")), args.size), markdown,
                  {"machine": info, "qwenvl": q_results, "transformers": h_results,
                   "transformers_meta": hf_meta, "errors": errors}, args.results_dir)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
