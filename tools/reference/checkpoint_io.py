"""Write Qwen2.5-VL checkpoints the way users have them: Hub or transformers-5 names, 1..n shards.

Shared by the tiny reference models (make_reference.py) and full-size random checkpoints
(build_random_checkpoint.py).
"""

import json
import os
import shutil

from tools.reference.common import write_json
from tools.reference.processor import (CHAT_TEMPLATE_PATH, GENERATION_CONFIG,
                                       PREPROCESSOR_CONFIG, chat_template)


def hub_name(name):
    """transformers-5 module name -> the name in the official Hub safetensors."""
    if name.startswith("model.visual."):
        return "visual." + name[len("model.visual."):]
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    return name


def v5_name(name):
    """Hub name -> transformers-5 name (for comparing a loaded model with a file)."""
    if name.startswith("visual."):
        return "model.visual." + name[len("visual."):]
    if name.startswith("model.") and not name.startswith(("model.visual.", "model.language_model.")):
        return "model.language_model." + name[len("model."):]
    return name


def exported_tensors(model, dtype, names="hub"):
    """state_dict in `dtype`, without the tied lm_head, renamed to Hub or transformers-5 names."""
    state = model.state_dict()
    # Tied means the head *is* the embedding tensor; the config flag's home moved in v5.
    emb = model.get_input_embeddings().weight
    tied = model.lm_head.weight.data_ptr() == emb.data_ptr()
    out = {}
    for name, tensor in state.items():
        if tied and name == "lm_head.weight":
            continue
        key = hub_name(name) if names == "hub" else name
        out[key] = tensor.detach().to(dtype).contiguous().cpu().clone()
    return out


def save_single(tensors, directory):
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})


def save_sharded(tensors, directory, shards):
    """Split tensors (in name order) into `shards` files of similar size + the index json."""
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    names = sorted(tensors)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    target = total / shards
    groups = [[] for _ in range(shards)]
    acc = 0
    gi = 0
    # Largest tensors (embedding, lm_head) decide the split; keep name order inside each shard.
    for name in names:
        size = tensors[name].numel() * tensors[name].element_size()
        if gi < shards - 1 and acc > 0 and acc + size / 2 > target * (gi + 1):
            gi += 1
        groups[gi].append(name)
        acc += size
    groups = [g for g in groups if g]
    weight_map = {}
    for i, group in enumerate(groups):
        file = "model-%05d-of-%05d.safetensors" % (i + 1, len(groups))
        save_file({n: tensors[n] for n in group}, os.path.join(directory, file),
                  metadata={"format": "pt"})
        for n in group:
            weight_map[n] = file
    write_json(os.path.join(directory, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
               indent=2)
    return len(groups)


def write_side_files(directory, tokenizer_dir, symlink_tokenizer=True, min_pixels=None,
                     max_pixels=None):
    """preprocessor/generation/chat-template/tokenizer files next to the weights."""
    pre = dict(PREPROCESSOR_CONFIG)
    if min_pixels is not None:
        pre["min_pixels"] = int(min_pixels)
    if max_pixels is not None:
        pre["max_pixels"] = int(max_pixels)
    write_json(os.path.join(directory, "preprocessor_config.json"), pre, indent=2)
    write_json(os.path.join(directory, "generation_config.json"), GENERATION_CONFIG, indent=2)
    write_json(os.path.join(directory, "chat_template.json"), {"chat_template": chat_template()},
               indent=2)
    tok_src = os.path.join(tokenizer_dir, "tokenizer.json")
    tok_dst = os.path.join(directory, "tokenizer.json")
    if os.path.lexists(tok_dst):
        os.remove(tok_dst)
    if symlink_tokenizer:
        os.symlink(os.path.relpath(os.path.abspath(tok_src), os.path.abspath(directory)), tok_dst)
    else:
        shutil.copyfile(tok_src, tok_dst)
    cfg_src = os.path.join(tokenizer_dir, "tokenizer_config.json")
    if os.path.exists(cfg_src):
        shutil.copyfile(cfg_src, os.path.join(directory, "tokenizer_config.json"))


def read_safetensors_dir(directory):
    """All tensors of a checkpoint directory (single file or index + shards)."""
    from safetensors.torch import load_file

    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for file in files:
        out.update(load_file(os.path.join(directory, file)))
    return out


def assert_loaded_equals_files(model, directory):
    """Every stored tensor must be in the loaded model, equal after the dtype cast, and every
    model parameter must come from the file (lm_head may be tied). Raises with the names."""
    import torch

    stored = read_safetensors_dir(directory)
    state = model.state_dict()
    missing, different = [], []
    used = set()
    for name, tensor in stored.items():
        key = v5_name(name)
        if key not in state:
            key = name if name in state else None
        if key is None:
            missing.append(name)
            continue
        used.add(key)
        got = state[key].detach().cpu()
        if got.shape != tensor.shape or not torch.equal(got.to(tensor.dtype), tensor):
            different.append(name)
    untouched = [n for n in state if n not in used and n != "lm_head.weight"]
    if "lm_head.weight" in state and "lm_head.weight" not in used:
        emb = state.get("model.language_model.embed_tokens.weight")
        if emb is None or not torch.equal(state["lm_head.weight"], emb):
            untouched.append("lm_head.weight")
    if missing or different or untouched:
        raise RuntimeError("loaded model differs from %s: not in model %s; different %s; "
                           "not from file %s" % (directory, missing[:8], different[:8],
                                                 untouched[:8]))
    return len(stored)


__all__ = ["hub_name", "v5_name", "exported_tensors", "save_single", "save_sharded",
           "write_side_files", "read_safetensors_dir", "assert_loaded_equals_files",
           "CHAT_TEMPLATE_PATH"]
