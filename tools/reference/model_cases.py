"""Section 4b: fp32 reference outputs of the tiny checkpoints, reloaded from disk like a user would.

For each case: processor inputs, M-RoPE position ids and rope delta, the vision tower's output,
the last position's final hidden state (what lm_head multiplies: the last-position logits are that
product, rebuilt whole by the tests from the checkpoint's own lm_head tensor), and 12 greedy steps
(no EOS stop, no repetition penalty) with the top-2 logit margin of every step so tests can skip
near-ties.
"""

import inspect
import os

from tools.reference.checkpoint_io import assert_loaded_equals_files
from tools.reference.common import log, save_npy, to_list, write_json
from tools.reference.processor import build_processor, render_chat, run_processor

IMAGE_TOKEN_ID = 151655
VIDEO_TOKEN_ID = 151656
GREEDY_STEPS = 12
# transformers' own largest logits of each case, kept so a test can check its rebuilt logits
# against transformers' values directly (the rebuild itself is checked here to 1e-6).
TOP_LOGITS = 8
# fp32 GEMV against the same product in fp64: ~1e-7 apart; the tests' bound is 1e-4.
MAX_REBUILD_REL_L2 = 1e-6


def _reference_images(ref_dir):
    """Write the case images as PNG (lossless, so the C++ side decodes the same pixels) once, in
    models/case_images/, and link them from ref_dir (both models' cases use the same images)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    os.makedirs(ref_dir, exist_ok=True)
    shared = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(ref_dir))),
                          "case_images")
    os.makedirs(shared, exist_ok=True)
    files = {}
    chelsea = Image.fromarray(data.chelsea())                          # 451x300
    files["chelsea.png"] = chelsea
    files["astronaut_small.png"] = Image.fromarray(data.astronaut()).resize((200, 160),
                                                                              Image.BICUBIC)
    rng = np.random.default_rng(5)
    stripes = (np.indices((90, 300)).sum(axis=0) % 23 * 11).astype(np.uint8)
    thin = np.stack([stripes, 255 - stripes, rng.integers(0, 256, (90, 300), dtype=np.uint8)], -1)
    files["thin_synthetic.png"] = Image.fromarray(thin, "RGB")
    files["coffee.png"] = Image.fromarray(data.coffee()).resize((360, 240), Image.BICUBIC)
    for name, image in files.items():
        image.save(os.path.join(shared, name))
        link = os.path.join(ref_dir, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join("..", "..", "case_images", name), link)
    return sorted(files)


def _text(t):
    return {"type": "text", "text": t}


def _img(file):
    return {"type": "image", "image": file}


def model_cases():
    """(name, messages with image file names, min_pixels, max_pixels)."""
    return [
        ("text_only", [{"role": "user", "content": [_text("Write one line about the sea.")]}],
         3136, 50176),
        ("one_image", [{"role": "user", "content": [_img("chelsea.png"),
                                                     _text("What animal is this?")]}],
         3136, 50176),
        ("one_image_large", [{"role": "user", "content": [_img("chelsea.png"),
                                                           _text("Describe it.")]}],
         3136, 200704),
        ("two_images", [{"role": "user", "content": [
            _img("astronaut_small.png"), _img("thin_synthetic.png"),
            _text("Compare these two images.")]}], 3136, 50176),
        ("multi_turn_image_first", [
            {"role": "user", "content": [_img("coffee.png"), _text("What is in the cup?")]},
            {"role": "assistant", "content": [_text("Coffee, it seems.")]},
            {"role": "user", "content": [_text("Is it hot?")]}], 3136, 50176),
    ]


def _strip_files(messages):
    out = []
    for msg in messages:
        content = [({"type": "image"} if item.get("type") == "image" else dict(item))
                   for item in msg["content"]]
        out.append({"role": msg["role"], "content": content})
    return out


def _image_files(messages):
    return [item["image"] for msg in messages for item in msg["content"]
            if item.get("type") == "image"]


def load_reference_model(directory):
    """from_pretrained in fp32 (eager attention); fail loudly on any key problem."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        directory, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    keys = ("missing_keys", "unexpected_keys", "mismatched_keys")
    problems = {k: sorted(str(x) for x in v) for k, v in (info or {}).items() if v and k in keys}
    problems = {k: v for k, v in problems.items() if not (k == "missing_keys" and
                                                           v == ["lm_head.weight"])}
    if problems:
        raise RuntimeError("loading %s reported %s" % (directory, problems))
    checked = assert_loaded_equals_files(model, directory)
    log("%s: loaded, %d stored tensors equal the model's" % (os.path.basename(directory), checked))
    return model.eval()


def mm_token_type_ids_for(input_ids):
    import torch

    types = torch.zeros_like(input_ids, dtype=torch.int32)
    types[input_ids == IMAGE_TOKEN_ID] = 1
    types[input_ids == VIDEO_TOKEN_ID] = 2
    return types


def rope_index(model, inputs):
    """M-RoPE position ids [3, 1, seq] and rope delta through transformers' get_rope_index."""
    import torch

    input_ids = inputs["input_ids"]
    fn = model.model.get_rope_index
    params = inspect.signature(fn).parameters
    kwargs = {"image_grid_thw": inputs.get("image_grid_thw"),
              "attention_mask": inputs.get("attention_mask")}
    if "mm_token_type_ids" in params:
        mm = inputs.get("mm_token_type_ids")
        kwargs["mm_token_type_ids"] = mm if mm is not None else mm_token_type_ids_for(input_ids)
    try:
        position_ids, deltas = fn(input_ids, **kwargs)
    except Exception as exc:
        if kwargs["image_grid_thw"] is not None:
            raise
        log("get_rope_index refused a text-only prompt (%s); using 0..n-1 on all 3 axes" % exc)
        seq = input_ids.shape[1]
        position_ids = torch.arange(seq).view(1, 1, -1).expand(3, 1, -1)
        deltas = torch.zeros(1, 1, dtype=torch.long)
    if position_ids.shape[0] == 4:  # (text, t, h, w) layout: keep the three M-RoPE rows
        position_ids = position_ids[1:]
    return position_ids.to(torch.long), int(torch.as_tensor(deltas).reshape(-1)[0].item())


def vision_features(model, inputs):
    """Concatenated merger output [tokens, hidden] of all images in the prompt."""
    import torch

    out = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
    if hasattr(out, "pooler_output") and out.pooler_output is not None:
        out = out.pooler_output
    if isinstance(out, (list, tuple)):
        out = torch.cat(list(out), dim=0)
    return out.detach().float()


def _forward_last_logits(model, ids, inputs):
    """model(...) exactly as transformers runs a prompt: it derives the M-RoPE positions itself.
    Returns the last position's logits and lm_head's input there (the final, normed hidden state)."""
    import torch

    captured = {}

    def keep_input(module, args):
        captured["hidden"] = args[0]

    if hasattr(model.model, "rope_deltas"):
        model.model.rope_deltas = None
    kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "use_cache": False}
    if "pixel_values" in inputs:
        kwargs["pixel_values"] = inputs["pixel_values"]
        kwargs["image_grid_thw"] = inputs["image_grid_thw"]
    if "mm_token_type_ids" in inspect.signature(model.forward).parameters:
        kwargs["mm_token_type_ids"] = mm_token_type_ids_for(ids)
    handle = model.lm_head.register_forward_pre_hook(keep_input)
    try:
        out = model(**kwargs)
    finally:
        handle.remove()
    return out.logits[0, -1].detach().float(), captured["hidden"][0, -1].detach().float()


def greedy(model, inputs, steps=GREEDY_STEPS):
    """Greedy argmax, recomputing the whole sequence each step (no KV cache, no EOS stop)."""
    import torch

    ids = inputs["input_ids"]
    generated, margins = [], []
    first = None
    for _ in range(steps):
        logits, hidden = _forward_last_logits(model, ids, inputs)
        if first is None:
            first = (logits, hidden)
        top = torch.topk(logits, 2)
        next_id = int(top.indices[0])
        generated.append(next_id)
        margins.append(float(top.values[0] - top.values[1]))
        ids = torch.cat([ids, torch.tensor([[next_id]], dtype=ids.dtype)], dim=1)
    return first[0], first[1], generated, margins


def lm_head_tensor_name(model):
    """The stored tensor (canonical Hub name) that transformers' lm_head multiplies by."""
    import torch

    if model.lm_head.bias is not None:
        raise RuntimeError("lm_head has a bias; the tests rebuild logits as weight x hidden only")
    emb = model.get_input_embeddings().weight
    tied = torch.equal(model.lm_head.weight, emb)
    return "model.embed_tokens.weight" if tied else "lm_head.weight"


def check_rebuild(model, logits, hidden, label):
    """lm_head.weight (fp64) x hidden must give transformers' logits: what the tests rely on."""
    weight = model.lm_head.weight.detach().double().cpu()
    rebuilt = weight @ hidden.double().cpu()
    want = logits.double().cpu()
    rel = float((rebuilt - want).norm() / want.norm())
    if rel > MAX_REBUILD_REL_L2:
        raise RuntimeError("%s: lm_head x hidden differs from the logits by %.2e" % (label, rel))
    return rel


def cross_check_generate(model, inputs, expected):
    """transformers' own generate (greedy, no penalty) should pick the same tokens."""
    try:
        out = model.generate(**inputs, do_sample=False, max_new_tokens=len(expected),
                             repetition_penalty=1.0, temperature=None, top_p=None, top_k=None)
        got = [int(t) for t in out[0, inputs["input_ids"].shape[1]:]]
        n = min(len(got), len(expected))
        same = got[:n] == expected[:n]
        if not same:
            log("WARNING generate() gives %s, our loop %s" % (got, expected))
        return same
    except Exception as exc:
        log("generate() cross-check skipped: %s" % exc)
        return None


def write_model_reference(model_dir, tokenizer_dir):
    import torch
    from PIL import Image

    name = os.path.basename(model_dir.rstrip("/"))
    ref_dir = os.path.join(model_dir, "reference")
    _reference_images(ref_dir)
    model = load_reference_model(model_dir)
    head_name = lm_head_tensor_name(model)
    cases = []
    with torch.no_grad():
        for case_name, messages, min_px, max_px in model_cases():
            proc = build_processor(tokenizer_dir, min_px, max_px)
            text = render_chat(proc, _strip_files(messages))
            files = _image_files(messages)
            images = [Image.open(os.path.join(ref_dir, f)).convert("RGB") for f in files]
            inputs = run_processor(proc, text, images)
            position_ids, delta = rope_index(model, inputs)
            entry = {"name": case_name, "messages": messages, "images": files,
                     "min_pixels": min_px, "max_pixels": max_px, "text": text,
                     "input_ids": to_list(inputs["input_ids"][0]),
                     "image_grid_thw": to_list(inputs["image_grid_thw"]) if files else [],
                     "rope_deltas": delta}
            pos_file = "%s_position_ids.npy" % case_name
            save_npy(os.path.join(ref_dir, pos_file), position_ids[:, 0, :].numpy(), "<i8")
            entry["position_ids_npy"] = pos_file
            if files:
                vis = vision_features(model, inputs)
                vis_file = "%s_vision.npy" % case_name
                save_npy(os.path.join(ref_dir, vis_file), vis.numpy(), "<f4")
                entry["vision_npy"] = vis_file
                n_pad = int((inputs["input_ids"] == IMAGE_TOKEN_ID).sum())
                if vis.shape[0] != n_pad:
                    raise RuntimeError("%s: %d vision tokens but %d <|image_pad|>"
                                       % (case_name, vis.shape[0], n_pad))
            else:
                entry["vision_npy"] = None
            logits, hidden, generated, margins = greedy(model, inputs)
            rebuild = check_rebuild(model, logits, hidden, "%s/%s" % (name, case_name))
            hidden_file = "%s_final_hidden.npy" % case_name
            save_npy(os.path.join(ref_dir, hidden_file), hidden.cpu().numpy(), "<f4")
            top = torch.topk(logits, TOP_LOGITS)
            entry.update({"final_hidden_npy": hidden_file, "lm_head_tensor": head_name,
                          "logits_top": [[int(i), float(v)] for v, i in zip(top.values,
                                                                            top.indices)],
                          "logits_rebuild_rel_l2": rebuild, "greedy_ids": generated,
                          "greedy_top2_margins": margins})
            entry["generate_matches"] = cross_check_generate(model, inputs, generated)
            cases.append(entry)
            log("%s/%s: %d ids, delta %d, greedy %s, min margin %.4f, rebuild %.1e" % (
                name, case_name, len(entry["input_ids"]), delta, generated, min(margins),
                rebuild))
    write_json(os.path.join(ref_dir, "cases.json"), cases)
    return {"model": name, "cases": len(cases)}
