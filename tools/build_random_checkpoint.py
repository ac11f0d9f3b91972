#!/usr/bin/env python3
"""Build a full-size random Qwen2.5-VL checkpoint laid out like the official Hub release.

    python3 tools/build_random_checkpoint.py --size 7B --out /tmp/ckpt/7B [--device cuda]

The config is tests/fixtures/configs/<size>.json (the official flat config.json; 3B, 7B, 32B,
72B, or any flat config via --config). Tensor names and shapes follow the Hub safetensors
(`visual.*`, `model.*`, `lm_head.weight` unless tied); values are drawn on the GPU in bf16 with
normal_(std) per tensor (norm weights are 1), which takes seconds, instead of transformers'
per-module init. Shards of about --shard-gb GB plus model.safetensors.index.json are written, with
the preprocessor/generation/chat-template/tokenizer files beside them. Random weights make no sense
as text; they exist for speed and memory measurements and loader tests.
"""

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tools.reference.checkpoint_io import write_side_files  # noqa: E402
from tools.reference.common import write_json  # noqa: E402

CONFIG_DIR = os.path.join(REPO, "tests", "fixtures", "configs")
TOKENIZER_DIR = os.path.join(REPO, "tests", "fixtures", "tokenizer")


def load_config(size, config_path):
    if config_path:
        with open(config_path) as f:
            return json.load(f)
    path = os.path.join(CONFIG_DIR, "%s.json" % size.upper())
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    from tools.reference.tiny_models import OFFICIAL_CONFIGS

    if size.lower() not in OFFICIAL_CONFIGS:
        raise SystemExit("no config for size %s (have %s or pass --config)" % (size, CONFIG_DIR))
    return OFFICIAL_CONFIGS[size.lower()]


def hub_tensor_shapes(cfg):
    """Name -> shape of every tensor in an official Qwen2.5-VL safetensors checkpoint."""
    v = cfg["vision_config"]
    vh, vi, depth = v["hidden_size"], v["intermediate_size"], v["depth"]
    patch, temporal = v.get("patch_size", 14), v.get("temporal_patch_size", 2)
    in_ch = v.get("in_chans", v.get("in_channels", 3))
    merge = v.get("spatial_merge_size", 2)
    h = cfg["hidden_size"]
    out_hidden = v.get("out_hidden_size", h)
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim", h // heads)
    inter, layers, vocab = cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    shapes = {"visual.patch_embed.proj.weight": (vh, in_ch, temporal, patch, patch)}
    for i in range(depth):
        p = "visual.blocks.%d." % i
        shapes.update({
            p + "norm1.weight": (vh,), p + "norm2.weight": (vh,),
            p + "attn.qkv.weight": (3 * vh, vh), p + "attn.qkv.bias": (3 * vh,),
            p + "attn.proj.weight": (vh, vh), p + "attn.proj.bias": (vh,),
            p + "mlp.gate_proj.weight": (vi, vh), p + "mlp.gate_proj.bias": (vi,),
            p + "mlp.up_proj.weight": (vi, vh), p + "mlp.up_proj.bias": (vi,),
            p + "mlp.down_proj.weight": (vh, vi), p + "mlp.down_proj.bias": (vh,),
        })
    merged = vh * merge * merge
    shapes.update({
        "visual.merger.ln_q.weight": (vh,),
        "visual.merger.mlp.0.weight": (merged, merged), "visual.merger.mlp.0.bias": (merged,),
        "visual.merger.mlp.2.weight": (out_hidden, merged), "visual.merger.mlp.2.bias": (out_hidden,),
        "model.embed_tokens.weight": (vocab, h),
        "model.norm.weight": (h,),
    })
    for i in range(layers):
        p = "model.layers.%d." % i
        shapes.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (heads * head_dim, h),
            p + "self_attn.q_proj.bias": (heads * head_dim,),
            p + "self_attn.k_proj.weight": (kv * head_dim, h),
            p + "self_attn.k_proj.bias": (kv * head_dim,),
            p + "self_attn.v_proj.weight": (kv * head_dim, h),
            p + "self_attn.v_proj.bias": (kv * head_dim,),
            p + "self_attn.o_proj.weight": (h, heads * head_dim),
            p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
            p + "mlp.down_proj.weight": (h, inter),
        })
    if not cfg.get("tie_word_embeddings", False):
        shapes["lm_head.weight"] = (vocab, h)
    return shapes


def random_tensor(name, shape, dtype, device, std):
    import torch

    if len(shape) == 1 and ("norm" in name or "ln_q" in name):
        return torch.ones(shape, dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device).normal_(0.0, std)


def build(cfg, out_dir, device, dtype_name, seed, shard_gb, std, tokenizer_dir):
    import torch
    from safetensors.torch import save_file

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype_name]
    if device == "cuda" and not torch.cuda.is_available():
        print("cuda is not available; drawing the weights on the CPU (slower)", flush=True)
        device = "cpu"
    torch.manual_seed(seed)
    os.makedirs(out_dir, exist_ok=True)
    for old in os.listdir(out_dir):
        if old.endswith(".safetensors") or old == "model.safetensors.index.json":
            os.remove(os.path.join(out_dir, old))
    shapes = hub_tensor_shapes(cfg)
    element = torch.tensor([], dtype=dtype).element_size()
    sizes = {n: element * int(torch.Size(s).numel()) for n, s in shapes.items()}
    total = sum(sizes.values())
    limit = shard_gb * 1e9
    groups, current, current_bytes = [], [], 0
    for name in shapes:  # vision first, then the decoder in layer order, like the Hub shards
        if current and current_bytes + sizes[name] > limit:
            groups.append(current)
            current, current_bytes = [], 0
        current.append(name)
        current_bytes += sizes[name]
    if current:
        groups.append(current)
    weight_map = {}
    t0 = time.time()
    for i, group in enumerate(groups):
        file = ("model.safetensors" if len(groups) == 1
                else "model-%05d-of-%05d.safetensors" % (i + 1, len(groups)))
        tensors = {n: random_tensor(n, shapes[n], dtype, device, std).cpu() for n in group}
        save_file(tensors, os.path.join(out_dir, file), metadata={"format": "pt"})
        del tensors
        for n in group:
            weight_map[n] = file
        print("  wrote %s (%d tensors, %.2f GB) at %.1fs" % (
            file, len(group), sum(sizes[n] for n in group) / 1e9, time.time() - t0), flush=True)
    if len(groups) > 1:
        write_json(os.path.join(out_dir, "model.safetensors.index.json"),
                   {"metadata": {"total_size": total},
                    "weight_map": dict(sorted(weight_map.items()))}, indent=2)
    flat = dict(cfg)
    flat["torch_dtype"] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[dtype_name]
    write_json(os.path.join(out_dir, "config.json"), flat, indent=2)
    write_side_files(out_dir, tokenizer_dir, symlink_tokenizer=False)
    return {"dir": out_dir, "tensors": len(shapes), "bytes": total, "shards": len(groups),
            "seconds": time.time() - t0}


def ensure_checkpoint(size, out_dir, device="cuda", dtype="bf16", seed=0, shard_gb=4.0,
                      std=0.02, tokenizer_dir=TOKENIZER_DIR, config_path=None):
    """Build unless out_dir already holds a checkpoint from the same config (for the benches)."""
    cfg = load_config(size, config_path)
    stamp = os.path.join(out_dir, ".random_checkpoint.json")
    want = {"config": cfg, "dtype": dtype, "seed": seed, "std": std}
    if os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == want:
                return out_dir
    info = build(cfg, out_dir, device, dtype, seed, shard_gb, std, tokenizer_dir)
    with open(stamp, "w") as f:
        json.dump(want, f)
    print("random %s checkpoint: %.2f GB in %d shards, %.1fs" % (
        size, info["bytes"] / 1e9, info["shards"], info["seconds"]), flush=True)
    return out_dir


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="3B", help="3B, 7B, 32B or 72B (tests/fixtures/configs)")
    p.add_argument("--config", default=None, help="a flat config.json instead of --size")
    p.add_argument("--out", required=True)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--std", type=float, default=0.02)
    p.add_argument("--shard-gb", type=float, default=4.0)
    p.add_argument("--tokenizer-dir", default=TOKENIZER_DIR)
    p.add_argument("--force", action="store_true", help="rebuild even if --out is up to date")
    args = p.parse_args(argv)
    if args.force:
        stamp = os.path.join(args.out, ".random_checkpoint.json")
        if os.path.exists(stamp):
            os.remove(stamp)
    t0 = time.time()
    ensure_checkpoint(args.size, args.out, args.device, args.dtype, args.seed, args.shard_gb,
                      args.std, args.tokenizer_dir, args.config)
    print("done in %.1fs: %s" % (time.time() - t0, args.out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
