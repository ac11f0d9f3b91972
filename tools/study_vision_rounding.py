#!/usr/bin/env python3
"""How far one rounding choice in the vision tower moves transformers' own bf16 image logits.

    python3 tools/study_vision_rounding.py --size 3B --ckpt-root /tmp/qwenvl-bench \
        --results-dir $OUT

transformers (bf16, SDPA) runs the image case of tools/check_full_size_logits.py (the random
full-size checkpoint, a ~1 MP photo) once as it is, then once per variant, each an equally valid
way to compute one step of its vision tower, the way another engine (qwenvl among them) may:
- the patch embedding as a GEMM over the flattened patches instead of cuDNN's conv3d;
- the MLP's down projection with K = 3420 padded by zeros to 3424 (16-byte rows: cuBLASLt then
  picks another kernel);
- every vision product in chunks of 4,096 rows;
- the gate and up projections stacked into one product.
Each variant's last-position logits are compared with the default's (rel L2). A variant that
moves them by more than the logits check's 2e-2 bound shows that the bound can only be met by rounding
exactly as transformers does at that step. Also counts the patch-embedding outputs that differ
between the conv3d and the GEMM.

With --qwenvl BIN, qwenvl's vision tower output for the same image (generate --dump-vision) is
compared element by element with transformers' as it is and with the variants (the patch
embedding as a GEMM, K padded to 3424): outputs that differ and rel L2.
None differing against a variant means the vision towers round alike everywhere else; qwenvl's
tower (CUDA bf16) matches transformers as it is: 0 values differ.

With --depths 0,1,..., the same comparison on copies of the checkpoint whose vision tower keeps
only its first d blocks (0: the patch embedding and the merger), to find the first step where
the two towers part.

Writes <results-dir>/<gpu>-vision-rounding-<size>.md and .json (default bench/results), replacing
the previous run's; the date and commit are inside.
"""

import argparse
import contextlib
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench.bench_common import (RESULTS_DIR, current_commit, log, make_photo,  # noqa: E402
                                run_qwenvl, slug, today, write_results)
from tools.build_random_checkpoint import ensure_checkpoint  # noqa: E402
from tools.check_full_size_logits import (IMAGE_PROMPT, compare, fp32_gemm_reductions,  # noqa: E402
                                          hf_inputs, hf_logits)
from tools.reference.model_cases import vision_features  # noqa: E402


def patch_embed_as_gemm(patch_embed, x):
    import torch.nn.functional as F

    w = patch_embed.proj.weight
    return F.linear(x.view(-1, w[0].numel()).to(w.dtype), w.view(w.shape[0], -1))


def linear_k_padded(layer, x):
    """The product with K padded by zeros to a multiple of 8 (16-byte rows in bf16)."""
    import torch.nn.functional as F

    k = x.shape[-1]
    pad = (k + 7) // 8 * 8 - k
    return F.linear(F.pad(x, (0, pad)).contiguous(), F.pad(layer.weight, (0, pad)).contiguous(),
                    layer.bias)


def linear_in_row_chunks(layer, x, rows=4096):
    import torch
    import torch.nn.functional as F

    flat = x.reshape(-1, x.shape[-1])
    out = torch.cat([F.linear(flat[i:i + rows], layer.weight, layer.bias)
                     for i in range(0, flat.shape[0], rows)])
    return out.view(*x.shape[:-1], -1)


def mlp_stacked_gate_up(mlp, x):
    import torch
    import torch.nn.functional as F

    gate_up = F.linear(x, torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]),
                       torch.cat([mlp.gate_proj.bias, mlp.up_proj.bias]))
    gate, up = gate_up.split(mlp.gate_proj.weight.shape[0], dim=-1)
    return mlp.down_proj(mlp.act_fn(gate) * up)


@contextlib.contextmanager
def variant(visual, conv=False, down=False, chunks=False, stacked=False):
    """The vision tower with the chosen steps computed another way (forwards swapped, restored)."""
    saved = []

    def swap(module, forward):
        saved.append((module, module.forward))
        module.forward = forward

    if conv:
        swap(visual.patch_embed, lambda x: patch_embed_as_gemm(visual.patch_embed, x))
    for block in visual.blocks:
        mlp = block.mlp
        if down:
            swap(mlp.down_proj, lambda x, m=mlp.down_proj: linear_k_padded(m, x))
        if chunks:
            layers = [mlp.gate_proj, mlp.up_proj, block.attn.qkv, block.attn.proj]
            if not down:
                layers.append(mlp.down_proj)
            for layer in layers:
                swap(layer, lambda x, m=layer: linear_in_row_chunks(m, x))
        if stacked:
            swap(mlp, lambda x, m=mlp: mlp_stacked_gate_up(m, x))
    try:
        yield
    finally:
        for module, forward in reversed(saved):
            module.forward = forward


VARIANTS = [
    ("patch embedding as a GEMM", dict(conv=True)),
    ("down projection, K padded to 3424", dict(down=True)),
    ("vision products in 4,096-row chunks", dict(chunks=True)),
    ("gate and up stacked", dict(stacked=True)),
    ("the first two together", dict(conv=True, down=True)),
]


VISION_VARIANTS = [  # (label, variant switches, split-K partial sums in fp32 as qwenvl's)
    ("transformers as it is", {}, False),
    ("patch embedding as a GEMM", dict(conv=True), False),
    ("down projection, K padded to 3424", dict(down=True), False),
    ("both", dict(conv=True, down=True), False),
    ("both, fp32 split-K sums", dict(conv=True, down=True), True),
]


def truncated_vision_checkpoint(model_dir, depth, out_dir):
    """A copy of model_dir whose vision tower has only its first `depth` blocks."""
    import shutil

    from safetensors.torch import load_file, save_file

    if os.path.exists(os.path.join(out_dir, "model.safetensors")):
        return out_dir
    os.makedirs(out_dir, exist_ok=True)
    for name in os.listdir(model_dir):
        if name.endswith(".safetensors") or name.endswith(".index.json") or name.startswith("."):
            continue
        shutil.copy(os.path.join(model_dir, name), out_dir)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    vision = config["vision_config"]
    vision["depth"] = depth
    vision["fullatt_block_indexes"] = [b for b in vision["fullatt_block_indexes"] if b < depth]
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    tensors = {}
    for name in sorted(os.listdir(model_dir)):
        if name.endswith(".safetensors"):
            for key, value in load_file(os.path.join(model_dir, name)).items():
                parts = key.split(".")
                if key.startswith("visual.blocks.") and int(parts[2]) >= depth:
                    continue
                tensors[key] = value
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    return out_dir


def compare_depths(binary, model_dir, photo, depths, tmp_dir):
    """compare_vision on vision towers cut to each of `depths` blocks."""
    import gc

    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    rows = {}
    for depth in depths:
        cut = truncated_vision_checkpoint(model_dir, depth, model_dir + "-vision%d" % depth)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            cut, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
        inputs = hf_inputs(cut, {"prompt": IMAGE_PROMPT, "images": [photo]})
        log("vision tower cut to %d blocks:" % depth)
        rows[str(depth)] = compare_vision(binary, cut, photo, model, inputs, tmp_dir)
        del model
        gc.collect()
        torch.cuda.empty_cache()
    return rows


def inv_freq_check(visual):
    """transformers' vision rotary frequencies against 1 / powf(theta, 2i / dim) in fp32 (glibc's
    powf, as qwenvl's model/rope.cpp computes them): how many differ, and the bits of both."""
    import ctypes
    import struct

    import torch

    rotary = getattr(visual, "rotary_pos_emb", None)
    if rotary is None or not hasattr(rotary, "inv_freq"):
        return {"missing": True}
    theirs = rotary.inv_freq.float().cpu()
    count = theirs.numel()
    libm = ctypes.CDLL("libm.so.6")
    libm.powf.restype, libm.powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
    f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]  # noqa: E731
    bits = lambda x: struct.unpack("<I", struct.pack("<f", x))[0]  # noqa: E731
    theta = float(getattr(rotary, "theta", 10000.0))
    ours = [f32(1.0 / libm.powf(theta, f32(f32(2 * i) / f32(2 * count)))) for i in range(count)]
    theirs_bits = [bits(x) for x in theirs.tolist()]
    ours_bits = [bits(x) for x in ours]
    differ = sum(a != b for a, b in zip(theirs_bits, ours_bits))
    log("vision inv_freq: %d of %d differ from glibc powf's" % (differ, count))
    return {"differ": differ, "count": count, "theirs": ["%08x" % b for b in theirs_bits],
            "ours": ["%08x" % b for b in ours_bits], "device": str(rotary.inv_freq.device)}


def compare_vision(binary, model_dir, photo, model, inputs, tmp_dir):
    """qwenvl's vision tower output against transformers' (as it is and per variant)."""
    import numpy as np
    import torch

    path = os.path.join(tmp_dir, "qwenvl_vision.npy")
    run_qwenvl(binary, model_dir, IMAGE_PROMPT, [photo], device="cuda", max_new_tokens=1,
               extra=["--dtype", "bf16", "--dump-vision", path], timeout=300)
    ours = np.load(path).astype(np.float64)
    rows = {}
    inputs = inputs.to("cuda")
    for label, switches, fp32_sums in VISION_VARIANTS:
        sums = fp32_gemm_reductions() if fp32_sums else contextlib.nullcontext()
        with torch.no_grad(), sums, variant(model.model.visual, **switches):
            theirs = vision_features(model, inputs).cpu().numpy().astype(np.float64)
        if theirs.shape != ours.shape:
            raise RuntimeError("vision shapes differ: %s vs %s" % (ours.shape, theirs.shape))
        rows[label] = {"outputs_differing": int((ours != theirs).sum()), "outputs": ours.size,
                       "rel_l2": float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))}
        log("qwenvl vision vs %-36s %8d of %d outputs differ, rel L2 %.3e" % (
            label, rows[label]["outputs_differing"], ours.size, rows[label]["rel_l2"]))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="3B")
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--tmp", default="/tmp/qwenvl-logits")
    p.add_argument("--results-dir", default=RESULTS_DIR)
    p.add_argument("--qwenvl", help="a qwenvl binary whose vision tower output to compare")
    p.add_argument("--depths", default="",
                   help="with --qwenvl: also compare vision towers cut to these block counts")
    args = p.parse_args()

    import torch
    import transformers
    from transformers import Qwen2_5_VLForConditionalGeneration

    model_dir = os.path.join(args.ckpt_root, args.size)
    ensure_checkpoint(args.size, model_dir, device="cuda")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    photo = make_photo(os.path.join(args.tmp, "astronaut_1280x800.png"), 1280, 800)
    inputs = hf_inputs(model_dir, {"prompt": IMAGE_PROMPT, "images": [photo]})
    visual = model.model.visual
    result = {"size": args.size, "torch": torch.__version__,
              "transformers": transformers.__version__,
              "cudnn": torch.backends.cudnn.version(), "gpu": torch.cuda.get_device_name(0),
              "image_grid_thw": inputs["image_grid_thw"].tolist(), "variants": {}}

    default = hf_logits(model, inputs)
    result["default_again"] = compare(hf_logits(model, inputs), default)
    for label, switches in VARIANTS:
        with variant(visual, **switches):
            result["variants"][label] = compare(hf_logits(model, inputs), default)
        log("%-38s rel L2 vs default %.3e" % (label, result["variants"][label]["rel_l2"]))

    with torch.no_grad():
        pixels = inputs["pixel_values"].cuda().to(torch.bfloat16)
        conv = visual.patch_embed(pixels)
        gemm = patch_embed_as_gemm(visual.patch_embed, pixels)
        result["patch_embedding_outputs_differing"] = int((conv != gemm).sum())
        result["patch_embedding_outputs"] = conv.numel()
    log("patch embedding, conv3d vs GEMM: %d of %d outputs differ" % (
        result["patch_embedding_outputs_differing"], result["patch_embedding_outputs"]))
    result["vision_inv_freq"] = inv_freq_check(visual)
    if args.qwenvl:
        result["qwenvl_vision"] = compare_vision(args.qwenvl, model_dir, photo, model, inputs,
                                                 args.tmp)
    if args.qwenvl and args.depths:
        del model
        result["qwenvl_vision_by_depth"] = compare_depths(
            args.qwenvl, model_dir, photo, [int(d) for d in args.depths.split(",")], args.tmp)
    write_results("%s-vision-rounding-%s" % (slug(result["gpu"]), args.size), markdown(result),
                  result, args.results_dir)
    return 0


def markdown(result):
    md = ["# Vision tower rounding: transformers bf16 variants, %s, on %s" % (
              result["size"], result["gpu"]), "",
          "- %s, commit %s; transformers %s, torch %s, cuDNN %s" % (
              today(), current_commit(), result["transformers"], result["torch"], result["cudnn"]),
          "- patch embedding, conv3d vs GEMM: %d of %d outputs differ" % (
              result["patch_embedding_outputs_differing"], result["patch_embedding_outputs"]), "",
          "| variant | image logits rel L2 vs transformers as it is |", "|---|---|"]
    md += ["| %s | %.3e |" % (label, r["rel_l2"]) for label, r in result["variants"].items()]
    if "qwenvl_vision" in result:
        md += ["", "qwenvl's vision tower output against these: `%s`" % json.dumps(
            result["qwenvl_vision"], separators=(",", ":"))]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    sys.exit(main())
