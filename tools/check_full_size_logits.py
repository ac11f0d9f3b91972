#!/usr/bin/env python3
"""Last-position logits of qwenvl (CUDA bf16) vs transformers (bf16, and fp32 for 3B).

    python3 tools/check_full_size_logits.py --sizes 3B,7B --qwenvl build/qwenvl \
        --ckpt-root /tmp/qwenvl-bench --results-dir $OUT

Per size: the random full-size checkpoint of tools/build_random_checkpoint.py (same layout as
bench/gpu_bench.py, so a warm machine reuses it); a text prompt and a ~1 MP PNG photo. qwenvl runs
as a subprocess with --dump-logits; transformers gets the same prompt through the official chat
template and the PIL image processor (the one qwenvl reproduces), and we check both built the same
token ids before comparing. Pass: rel L2(qwenvl bf16, transformers bf16) <= 2e-2 on every case.
Where fp32 runs, both bf16 engines are also compared to it, to show whether qwenvl's bf16 error is
in line with transformers' own. Writes <results-dir>/<gpu>-logits-<sizes>.md and .json (default
bench/results), replacing the previous run's; the date and commit are inside.

With --awq-group G, qwenvl runs the checkpoint quantized to 4-bit AWQ (`qwenvl quantize`, round
to nearest per group of G) and transformers its dequantized twin in bf16: the comparison then
measures qwenvl's int4 kernels, not the quantization error (issue 23's reference).
"""

import argparse
import contextlib
import functools
import gc
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench.bench_common import (DEFAULT_QWENVL, RESULTS_DIR, current_commit, log,  # noqa: E402
                                make_photo, run_qwenvl, slug, today, write_results)
from tools.build_random_checkpoint import TOKENIZER_DIR, ensure_checkpoint  # noqa: E402
from tools.reference.processor import build_processor, render_chat, run_processor  # noqa: E402

PASS_REL_L2 = 2e-2
TEXT_PROMPT = "Write a short story about a robot learning to paint."
IMAGE_PROMPT = "Describe this image."


def compare(a, b):
    """a against the reference b: rel L2 (float64), max |a-b|, same argmax, top-5 overlap."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise RuntimeError("logit shapes differ: %s vs %s" % (a.shape, b.shape))
    top = lambda x: set(np.argsort(-x)[:5].tolist())  # noqa: E731
    return {"rel_l2": float(np.linalg.norm(a - b) / np.linalg.norm(b)),
            "max_abs": float(np.abs(a - b).max()),
            "argmax_equal": bool(a.argmax() == b.argmax()),
            "top5_overlap": len(top(a) & top(b))}


def qwenvl_logits(binary, model_dir, case, tmp_dir):
    import numpy as np

    path = os.path.join(tmp_dir, "qwenvl_logits.npy")
    if os.path.exists(path):
        os.remove(path)
    summary = run_qwenvl(binary, model_dir, case["prompt"], case["images"], device="cuda",
                         max_new_tokens=1, extra=["--dtype", "bf16", "--dump-logits", path],
                         timeout=300)
    return np.load(path).astype(np.float32), summary


def hf_inputs(model_dir, case):
    """Processor inputs built like a user would, with the checkpoint's min/max pixels."""
    from PIL import Image

    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        pre = json.load(f)
    size = pre.get("size", {})
    proc = build_processor(TOKENIZER_DIR, pre.get("min_pixels", size.get("shortest_edge")),
                           pre.get("max_pixels", size.get("longest_edge")))
    images = [Image.open(p).convert("RGB") for p in case["images"]]
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": case["prompt"]}]
    text = render_chat(proc, [{"role": "user", "content": content}])
    return run_processor(proc, text, images)


def hf_logits(model, inputs):
    """One prompt forward, logits of the last position only, as float32 numpy."""
    import torch

    if hasattr(model.model, "rope_deltas"):
        model.model.rope_deltas = None  # positions derived afresh for this prompt
    with torch.no_grad():
        out = model(**inputs.to("cuda"), use_cache=False, logits_to_keep=1)
    return out.logits[0, -1].float().cpu().numpy()


@contextlib.contextmanager
def fp32_gemm_reductions():
    """torch lets cuBLAS sum split-K partial products in bf16 by default; qwenvl's products sum
    them in fp32 (cuBLASLt's compute-type reduction or one block per row)."""
    import torch

    matmul = torch.backends.cuda.matmul
    saved = matmul.allow_bf16_reduced_precision_reduction
    matmul.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_bf16_reduced_precision_reduction = saved


def transformers_variance_study(model, inputs, hf_bf16, q, result):
    """transformers bf16 against itself under equally valid settings: each SDPA kernel forced
    (cuDNN, flash, memory-efficient, math; a kernel that refuses the inputs is recorded as such)
    and fp32 split-K reductions in its GEMMs. How far they move its own last-position logits is
    the noise floor under the qwenvl-vs-transformers comparison; qwenvl against each variant
    shows which one it rounds like."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    variants = [("%s_attention" % label, functools.partial(sdpa_kernel, [backend]))
                for label, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION),
                                       ("flash", SDPBackend.FLASH_ATTENTION),
                                       ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                                       ("math", SDPBackend.MATH))]
    variants.append(("fp32_reduction", fp32_gemm_reductions))
    for label, setting in variants:
        for name, r in result["cases"].items():
            if name not in hf_bf16:
                continue
            try:
                with setting():
                    alt = hf_logits(model, inputs[name])
            except Exception as exc:
                r["hf_bf16_%s_error" % label] = str(exc)[:300]
                continue
            r["hf_bf16_%s_vs_hf_bf16" % label] = compare(alt, hf_bf16[name])
            if name in q:
                r["qwenvl_vs_hf_bf16_%s" % label] = compare(q[name], alt)
            log("%s: transformers bf16 with %s vs its default %s" % (
                name, label, r["hf_bf16_%s_vs_hf_bf16" % label]))


def check_size(size, args, cases):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    model_dir = os.path.join(args.ckpt_root, size)
    t0 = time.time()
    ensure_checkpoint(size, model_dir, device="cuda")
    qwenvl_dir = hf_dir = model_dir
    if args.awq_group:
        qwenvl_dir = "%s-awq%d" % (model_dir, args.awq_group)
        hf_dir = qwenvl_dir + "-dequantized"
        if not os.path.exists(os.path.join(hf_dir, "model.safetensors")):
            subprocess.run([args.qwenvl, "quantize", "--model", model_dir, "--out", qwenvl_dir,
                            "--group-size", str(args.awq_group), "--dequantized", hf_dir,
                            "--dequantized-dtype", "bf16"], check=True)
    torch.cuda.empty_cache()
    result = {"checkpoint_s": time.time() - t0, "cases": {}}
    q = {}
    for case in cases:  # qwenvl first, while the GPU is free of the torch model
        r = result["cases"][case["name"]] = {}
        try:
            q[case["name"]], summary = qwenvl_logits(args.qwenvl, qwenvl_dir, case, args.tmp)
            r["qwenvl"] = {k: summary.get(k) for k in ("prompt_tokens", "image_grid_thw",
                                                      "rope_delta", "device", "ttft_ms")}
            r["prompt_token_ids"] = summary["prompt_token_ids"]
            log("%s %s: qwenvl done (%d tokens)" % (size, case["name"], summary["prompt_tokens"]))
        except Exception as exc:
            r["error"] = "qwenvl: %s" % exc
            log("%s %s: QWENVL FAILED: %s" % (size, case["name"], exc))

    t0 = time.time()
    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        hf_dir, dtype=torch.bfloat16, attn_implementation="sdpa", output_loading_info=True)
    model = model.cuda().eval()
    result["hf_load_s"] = time.time() - t0
    tied = (model.get_output_embeddings().weight.data_ptr() ==
            model.get_input_embeddings().weight.data_ptr())
    problems = {k: [str(x) for x in v if not (tied and str(x) == "lm_head.weight")][:10]
                for k, v in (info or {}).items()
                if k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    problems = {k: v for k, v in problems.items() if v}
    if problems:  # a random-initialised tensor would make every comparison meaningless
        result["loading_problems"] = problems
        log("%s: LOADING PROBLEMS %s" % (size, problems))
    inputs, hf_bf16 = {}, {}
    for case in cases:
        r = result["cases"][case["name"]]
        try:
            inputs[case["name"]] = hf_inputs(model_dir, case)
            ids = inputs[case["name"]]["input_ids"][0].tolist()
            grid = inputs[case["name"]].get("image_grid_thw")
            r["hf_prompt_tokens"] = len(ids)
            r["hf_image_grid_thw"] = grid.tolist() if grid is not None else []
            if "prompt_token_ids" in r:
                r["ids_equal"] = r.pop("prompt_token_ids") == ids
                if not r["ids_equal"]:
                    log("%s %s: TOKEN IDS DIFFER (qwenvl %d, transformers %d) -- logits are not "
                        "comparable" % (size, case["name"], r["qwenvl"]["prompt_tokens"], len(ids)))
            hf_bf16[case["name"]] = hf_logits(model, inputs[case["name"]])
            if case["name"] in q:
                r["qwenvl_vs_hf_bf16"] = compare(q[case["name"]], hf_bf16[case["name"]])
                r["pass"] = bool(r["ids_equal"] and
                                 r["qwenvl_vs_hf_bf16"]["rel_l2"] <= PASS_REL_L2)
            log("%s %s: %s" % (size, case["name"], r.get("qwenvl_vs_hf_bf16")))
        except Exception as exc:
            r["error"] = (r.get("error", "") + " transformers: %s" % exc).strip()
            log("%s %s: TRANSFORMERS FAILED: %s" % (size, case["name"], exc))
        torch.cuda.empty_cache()

    transformers_variance_study(model, inputs, hf_bf16, q, result)
    if size.upper() in args.fp32_sizes:
        try:
            model = model.float()  # exact: the stored weights are bf16 values
            for case in cases:
                name, r = case["name"], result["cases"][case["name"]]
                if name not in hf_bf16:
                    continue
                fp32 = hf_logits(model, inputs[name])
                r["hf_bf16_vs_fp32"] = compare(hf_bf16[name], fp32)
                if name in q:
                    r["qwenvl_bf16_vs_fp32"] = compare(q[name], fp32)
                log("%s %s fp32: hf bf16 %s, qwenvl bf16 %s" % (
                    size, name, r["hf_bf16_vs_fp32"], r.get("qwenvl_bf16_vs_fp32")))
                torch.cuda.empty_cache()
        except Exception as exc:
            result["fp32_error"] = str(exc)
            log("%s fp32 reference FAILED: %s" % (size, exc))
    del model, inputs
    gc.collect()
    torch.cuda.empty_cache()
    return result


def table(data):
    def cell(r, key, field, fmt="%.2e"):
        return (fmt % r[key][field]) if key in r else "—"

    lines = ["%-4s %-6s %-4s %-10s %-8s %-7s %-5s %-11s %-11s %s" % (
        "size", "case", "ids", "relL2 q/hf", "maxabs", "argmax", "top5", "q vs fp32",
        "hf vs fp32", "pass")]
    for size, res in data["sizes"].items():
        for name, r in res.get("cases", {}).items():
            lines.append("%-4s %-6s %-4s %-10s %-8s %-7s %-5s %-11s %-11s %s" % (
                size, name, {True: "=", False: "DIFF"}.get(r.get("ids_equal"), "?"),
                cell(r, "qwenvl_vs_hf_bf16", "rel_l2"),
                cell(r, "qwenvl_vs_hf_bf16", "max_abs", "%.3f"),
                cell(r, "qwenvl_vs_hf_bf16", "argmax_equal", "%s"),
                cell(r, "qwenvl_vs_hf_bf16", "top5_overlap", "%d"),
                cell(r, "qwenvl_bf16_vs_fp32", "rel_l2"), cell(r, "hf_bf16_vs_fp32", "rel_l2"),
                "PASS" if r.get("pass") else "FAIL " + r.get("error", "")[:60]))
    return "\n".join(lines)


def markdown(data):
    return "\n".join([
        "# Logits: qwenvl (CUDA bf16) vs transformers bf16 on %s" % data["gpu"], "",
        "- %s, commit %s; transformers %s, torch %s; pass: rel L2 <= %g" % (
            today(), current_commit(), data["transformers"], data["torch"], data["pass_rel_l2"]),
        "", "```", table(data), "```", ""])


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="3B,7B")
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--fp32-sizes", default="3B", help="sizes that also get an fp32 reference")
    p.add_argument("--tmp", default="/tmp/qwenvl-logits")
    p.add_argument("--results-dir", default=RESULTS_DIR)
    p.add_argument("--awq-group", type=int, default=0,
                   help="run qwenvl on a 4-bit AWQ copy with this group size (0: off)")
    args = p.parse_args()
    args.fp32_sizes = {s.upper() for s in args.fp32_sizes.split(",") if s}
    os.makedirs(args.tmp, exist_ok=True)
    photo = make_photo(os.path.join(args.tmp, "astronaut_1280x800.png"), 1280, 800)
    cases = [{"name": "text", "prompt": TEXT_PROMPT, "images": []},
             {"name": "image", "prompt": IMAGE_PROMPT, "images": [photo]}]
    import torch
    import transformers

    data = {"pass_rel_l2": PASS_REL_L2, "torch": torch.__version__,
            "transformers": transformers.__version__, "gpu": torch.cuda.get_device_name(0),
            "photo": photo, "sizes": {}}
    name = "%s-logits-%s%s" % (slug(data["gpu"]), args.sizes.replace(",", "-"),
                               "-awq" if args.awq_group else "")
    data["awq_group"] = args.awq_group
    t_start = time.time()
    for size in [s for s in args.sizes.split(",") if s]:
        try:
            data["sizes"][size] = check_size(size, args, cases)
        except Exception as exc:
            data["sizes"][size] = {"error": "%s: %s" % (type(exc).__name__, exc)}
            log("%s FAILED: %s" % (size, exc))
        data["elapsed_s"] = time.time() - t_start
        # After every size, so a timeout keeps what finished.
        path = write_results(name, markdown(data), data, args.results_dir)
    print(table(data), flush=True)
    ok = all(r.get("pass") for res in data["sizes"].values()
             for r in res.get("cases", {"x": {}}).values())
    print("overall: %s (%.0fs); wrote %s" % ("PASS" if ok else "FAIL", data["elapsed_s"], path),
          flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
