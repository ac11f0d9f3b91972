"""Section 4a: build the two tiny random Qwen2.5-VL checkpoints described in docs/FIXTURES.md."""

import copy
import json
import os
import tempfile

from tools.reference.checkpoint_io import (exported_tensors, save_sharded, save_single,
                                           write_side_files)
from tools.reference.common import log, write_json

# Official Qwen/Qwen2.5-VL-3B-Instruct config.json (flat layout), the starting point.
OFFICIAL_3B = {
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "vision_token_id": 151654,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "max_position_embeddings": 128000,
    "max_window_layers": 70,
    "model_type": "qwen2_5_vl",
    "num_attention_heads": 16,
    "num_hidden_layers": 36,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.41.2",
    "use_cache": True,
    "use_sliding_window": False,
    "vision_config": {
        "depth": 32,
        "hidden_act": "silu",
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "in_chans": 3,
        "out_hidden_size": 2048,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "spatial_patch_size": 14,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2,
        "temporal_patch_size": 2,
    },
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vocab_size": 151936,
}

# Official Qwen/Qwen2.5-VL-7B-Instruct config.json (flat layout).
OFFICIAL_7B = copy.deepcopy(OFFICIAL_3B)
OFFICIAL_7B.update({
    "hidden_size": 3584, "intermediate_size": 18944, "max_window_layers": 28,
    "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
    "tie_word_embeddings": False, "vocab_size": 152064,
})
OFFICIAL_7B["vision_config"] = dict(OFFICIAL_3B["vision_config"], out_hidden_size=3584)

# Official Qwen/Qwen2.5-VL-32B-Instruct and 72B differ in text sizes only.
OFFICIAL_CONFIGS = {"3b": OFFICIAL_3B, "7b": OFFICIAL_7B}


def tiny_flat_config(tied):
    """Text widths as narrow as the CUDA attention kernels allow (head_dim 16, the smallest of
    AttentionHeadDims; mrope_section sums to head_dim / 2): the vocabulary's rows dominate the
    checkpoint, so the width sets the fixture's size. tiny-tied keeps grouped-query attention
    (2 query heads sharing 1 key/value head, hidden 32); tiny-untied has one head of each
    (hidden 16), so both layouts are covered."""
    cfg = copy.deepcopy(OFFICIAL_3B if tied else OFFICIAL_7B)
    hidden = 32 if tied else 16
    heads, kv = (2, 1) if tied else (1, 1)
    cfg.update({
        "hidden_size": hidden, "intermediate_size": 128, "num_hidden_layers": 3,
        "num_attention_heads": heads, "num_key_value_heads": kv, "max_position_embeddings": 32768,
        "max_window_layers": 3, "vocab_size": 151680, "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-06, "tie_word_embeddings": bool(tied),
        "torch_dtype": "bfloat16" if tied else "float16",
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
    })
    cfg["vision_config"].update({
        "depth": 4, "hidden_size": 64, "num_heads": 4, "intermediate_size": 128,
        "fullatt_block_indexes": [1, 3], "window_size": 112, "patch_size": 14,
        "spatial_patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
        "out_hidden_size": hidden,
    })
    return cfg


def config_from_flat(flat):
    """Load a flat Hub config.json through transformers exactly as a user's checkpoint would be."""
    from transformers import AutoConfig

    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(flat, f)
        return AutoConfig.from_pretrained(tmp)


def randomize_(model, seed, std=0.05, embed_std=0.1):
    """Deterministic init with larger spread than the default so outputs are not flat:
    matrices/convs ~ N(0, std), embedding ~ N(0, embed_std), norm weights ~ 1 + N(0, 0.1),
    biases ~ N(0, 0.02). Runs on whatever device the model is on."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            shape = tuple(param.shape)
            if "embed_tokens" in name:
                values = torch.randn(shape, generator=gen) * embed_std
            elif name.endswith("bias"):
                values = torch.randn(shape, generator=gen) * 0.02
            elif param.dim() == 1:
                values = 1.0 + torch.randn(shape, generator=gen) * 0.1
            else:
                values = torch.randn(shape, generator=gen) * std
            param.copy_(values.to(param.dtype))


def build_model(flat, seed, dtype):
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    config = config_from_flat(flat)
    model = Qwen2_5_VLForConditionalGeneration(config).to(torch.float32)
    randomize_(model, seed)
    tied = bool(flat["tie_word_embeddings"])
    emb = model.get_input_embeddings().weight
    if tied and model.lm_head.weight.data_ptr() != emb.data_ptr():
        log("tiny: lm_head was not tied after init; tying it by hand")
        model.lm_head.weight = emb
    if not tied and model.lm_head.weight.data_ptr() == emb.data_ptr():
        raise RuntimeError("untied config produced a tied lm_head")
    return model.to(dtype).eval()


def write_tiny_tied(models_dir, tokenizer_dir, seed=11):
    """3B-like: bf16, Hub names, flat config, one model.safetensors."""
    import torch

    directory = os.path.join(models_dir, "tiny-tied")
    os.makedirs(directory, exist_ok=True)
    flat = tiny_flat_config(tied=True)
    model = build_model(flat, seed, torch.bfloat16)
    tensors = exported_tensors(model, torch.bfloat16, names="hub")
    save_single(tensors, directory)
    write_json(os.path.join(directory, "config.json"), flat, indent=2)
    write_side_files(directory, tokenizer_dir)
    log("tiny-tied: %d tensors, %.1f MB" % (
        len(tensors), sum(t.numel() * t.element_size() for t in tensors.values()) / 1e6))
    return directory


def write_tiny_untied(models_dir, tokenizer_dir, seed=12):
    """7B-like: fp16, transformers-5 names, nested config (save_pretrained's), 2 shards."""
    import torch

    directory = os.path.join(models_dir, "tiny-untied")
    os.makedirs(directory, exist_ok=True)
    flat = tiny_flat_config(tied=False)
    model = build_model(flat, seed, torch.float16)
    tensors = exported_tensors(model, torch.float16, names="v5")
    shards = save_sharded(tensors, directory, shards=2)
    try:
        model.config.dtype = torch.float16
    except Exception:
        pass
    model.config.save_pretrained(directory)
    with open(os.path.join(directory, "config.json")) as f:
        nested = json.load(f)
    if "text_config" not in nested:
        log("tiny-untied: WARNING transformers wrote a flat config; writing the nested one by hand")
        write_json(os.path.join(directory, "config.json"), nested_config(flat), indent=2)
    write_side_files(directory, tokenizer_dir)
    log("tiny-untied: %d tensors in %d shards" % (len(tensors), shards))
    return directory


TEXT_KEYS = ["attention_dropout", "bos_token_id", "eos_token_id", "hidden_act", "hidden_size",
             "initializer_range", "intermediate_size", "max_position_embeddings",
             "max_window_layers", "num_attention_heads", "num_hidden_layers",
             "num_key_value_heads", "rms_norm_eps", "rope_theta", "sliding_window",
             "use_cache", "use_sliding_window", "vocab_size", "tie_word_embeddings"]


def nested_config(flat):
    """The transformers-5 layout: text settings under text_config, rope as rope_parameters."""
    text = {k: flat[k] for k in TEXT_KEYS if k in flat}
    text["model_type"] = "qwen2_5_vl_text"
    text["dtype"] = flat.get("torch_dtype")
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": flat["rope_theta"],
                               "mrope_section": flat["rope_scaling"]["mrope_section"]}
    text.pop("rope_theta", None)
    top = {k: flat[k] for k in ("architectures", "image_token_id", "video_token_id",
                                "vision_start_token_id", "vision_end_token_id",
                                "vision_token_id", "model_type", "tie_word_embeddings")}
    top["dtype"] = flat.get("torch_dtype")
    top["text_config"] = text
    top["vision_config"] = dict(flat["vision_config"])
    top["transformers_version"] = "5.17.0"
    return top
