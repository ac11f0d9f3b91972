#!/usr/bin/env python3
"""Where qwenvl's bf16 activations part from transformers', op by op.

    python3 tools/study_activations.py --sizes 3B,7B --qwenvl build/qwenvl \
        --ckpt-root /tmp/qwenvl-bench --results-dir $OUT

For each size and case of tools/check_full_size_logits.py (a text prompt, a ~1 MP photo), the
last prompt position's activations from qwenvl (CUDA bf16, --dump-activations) and from
transformers in bf16 and fp32 (hooks on each decoder layer): the embedding, then per layer the
attention's output (o_proj's input), the residual stream after attention and after the MLP.
Prints rel L2 of qwenvl vs transformers bf16 next to transformers bf16 vs fp32 and qwenvl vs
fp32. A first column of zeros says qwenvl rounds exactly as transformers does up to there; where
it first leaves zero names the op that rounds differently. Writes
<results-dir>/<gpu>-activations.md and .json (default bench/results), replacing the previous run's;
the date and commit are inside.
"""

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench.bench_common import (DEFAULT_QWENVL, RESULTS_DIR, current_commit, log,  # noqa: E402
                                make_photo, run_qwenvl, slug, today, write_results)
from tools.build_random_checkpoint import ensure_checkpoint  # noqa: E402
from tools.check_full_size_logits import (IMAGE_PROMPT, TEXT_PROMPT, compare,  # noqa: E402
                                          hf_inputs)


def rel_l2(a, b):
    return compare(a, b)["rel_l2"]


def qwenvl_activations(binary, model_dir, case, tmp_dir):
    import numpy as np

    path = os.path.join(tmp_dir, "qwenvl_activations.npy")
    if os.path.exists(path):
        os.remove(path)
    run_qwenvl(binary, model_dir, case["prompt"], case["images"], device="cuda", max_new_tokens=1,
               extra=["--dtype", "bf16", "--dump-activations", path], timeout=300)
    return np.load(path).astype(np.float32)


def hf_activations(model, inputs):
    """The same steps as qwenvl's dump: the embedding (hidden_states[0]), then per layer, from
    hooks, o_proj's input, post_attention_layernorm's input (the residual after attention) and
    the layer's output (hidden_states ends with the final norm's output instead)."""
    import torch

    layers = model.model.language_model.layers
    taps = {}

    def tap(name):
        return lambda module, args: taps.__setitem__(name, args[0][0, -1].float().cpu().numpy())

    def tap_output(name):
        return lambda module, args, out: taps.__setitem__(
            name, (out[0] if isinstance(out, tuple) else out)[0, -1].float().cpu().numpy())

    handles = []
    for index, layer in enumerate(layers):
        handles.append(layer.self_attn.o_proj.register_forward_pre_hook(tap((index, 1))))
        handles.append(layer.post_attention_layernorm.register_forward_pre_hook(tap((index, 2))))
        handles.append(layer.register_forward_hook(tap_output((index, 3))))
    if hasattr(model.model, "rope_deltas"):
        model.model.rope_deltas = None
    try:
        with torch.no_grad():
            out = model(**inputs.to("cuda"), use_cache=False, output_hidden_states=True,
                        logits_to_keep=1)
    finally:
        for h in handles:
            h.remove()
    steps = [out.hidden_states[0][0, -1].float().cpu().numpy()]
    for index in range(len(layers)):
        steps += [taps[(index, 1)], taps[(index, 2)], taps[(index, 3)]]
    return steps


def study_size(size, args, cases):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    model_dir = os.path.join(args.ckpt_root, size)
    ensure_checkpoint(size, model_dir, device="cuda")
    q = {c["name"]: qwenvl_activations(args.qwenvl, model_dir, c, args.tmp) for c in cases}
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    inputs = {c["name"]: hf_inputs(model_dir, c) for c in cases}
    bf16 = {name: hf_activations(model, x) for name, x in inputs.items()}
    model = model.float()
    fp32 = {name: hf_activations(model, x) for name, x in inputs.items()}
    del model
    torch.cuda.empty_cache()
    result = {}
    for name in q:
        rows = []
        for i, (hb, hf) in enumerate(zip(bf16[name], fp32[name])):
            rows.append({"step": i, "qwenvl_vs_hf_bf16": rel_l2(q[name][i], hb),
                         "hf_bf16_vs_fp32": rel_l2(hb, hf),
                         "qwenvl_vs_fp32": rel_l2(q[name][i], hf),
                         "norm": float((hf.astype("float64") ** 2).sum() ** 0.5)})
        result[name] = rows
        log("%s %s" % (size, name))
        print(step_table(rows), flush=True)
    return result


def step_table(rows):
    lines = ["%-9s %-10s %-10s %-10s %s" % ("step", "q vs hf", "hf vs fp32", "q vs fp32",
                                            "|x| fp32")]
    for r in rows:
        layer, part = divmod(r["step"] - 1, 3)
        label = "emb" if r["step"] == 0 else "L%d %s" % (layer, ("attn", "+attn", "+mlp")[part])
        lines.append("%-9s %-10.2e %-10.2e %-10.2e %.1f" % (
            label, r["qwenvl_vs_hf_bf16"], r["hf_bf16_vs_fp32"], r["qwenvl_vs_fp32"], r["norm"]))
    return "\n".join(lines)


def markdown(data, gpu):
    md = ["# Activations: qwenvl (CUDA bf16) vs transformers bf16 and fp32 on %s" % gpu, "",
          "- %s, commit %s; rel L2 at the last prompt position, per decoder step" % (
              today(), current_commit()), ""]
    for size, cases in data.items():
        for name, rows in cases.items():
            md += ["## %s %s" % (size, name), "", "```", step_table(rows), "```", ""]
    return "\n".join(md)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="3B,7B")
    p.add_argument("--cases", default="text,image")
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--tmp", default="/tmp/qwenvl-activations")
    p.add_argument("--results-dir", default=RESULTS_DIR)
    args = p.parse_args()
    os.makedirs(args.tmp, exist_ok=True)
    photo = make_photo(os.path.join(args.tmp, "astronaut_1280x800.png"), 1280, 800)
    cases = [c for c in ({"name": "text", "prompt": TEXT_PROMPT, "images": []},
                         {"name": "image", "prompt": IMAGE_PROMPT, "images": [photo]})
             if c["name"] in args.cases.split(",")]
    import torch

    gpu = torch.cuda.get_device_name(0)
    data = {}
    for size in [s for s in args.sizes.split(",") if s]:
        data[size] = study_size(size, args, cases)
        write_results("%s-activations" % slug(gpu), markdown(data, gpu), {"gpu": gpu, "sizes": data},
                      args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
