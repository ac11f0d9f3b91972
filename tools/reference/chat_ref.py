"""Section 2: chat-template rendering and processor input_ids for ~15 conversations."""

import os

from tools.reference.common import log, to_list, write_json
from tools.reference.processor import (build_processor, render_chat, render_chat_independently,
                                       run_processor)


def synthetic_image(height, width, seed):
    """A seeded smooth-plus-noise RGB image (PIL) of the given size."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0.0, 1.0, height, dtype=np.float32),
                       np.linspace(0.0, 1.0, width, dtype=np.float32), indexing="ij")
    base = np.stack([y * 200 + x * 40, x * 220, (1 - y) * 120 + x * y * 100], axis=-1)
    noise = rng.normal(0.0, 18.0, size=(height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def _text(t):
    return {"type": "text", "text": t}


IMG = {"type": "image"}


def conversations():
    """(name, messages, image_sizes [[h, w]...], min_pixels, max_pixels)."""
    sys_msg = {"role": "system", "content": [_text("You are a careful assistant. Answer briefly.")]}
    return [
        ("text_only", [{"role": "user", "content": [_text("What is the capital of France?")]}],
         [], 3136, 12845056),
        ("system_given", [sys_msg, {"role": "user", "content": [_text("Say hi.")]}],
         [], 3136, 12845056),
        ("one_image", [{"role": "user", "content": [IMG, _text("Describe this image.")]}],
         [[224, 336]], 3136, 12845056),
        ("one_image_text_first", [{"role": "user", "content": [_text("Look:"), IMG]}],
         [[480, 640]], 3136, 12845056),
        ("two_images_one_turn",
         [{"role": "user", "content": [IMG, IMG, _text("Compare the two pictures.")]}],
         [[300, 400], [128, 700]], 3136, 12845056),
        ("images_between_text",
         [{"role": "user", "content": [_text("First "), IMG, _text(" then second "), IMG,
                                       _text(" and done.")]}],
         [[100, 100], [333, 517]], 3136, 12845056),
        ("multi_turn_text",
         [{"role": "user", "content": [_text("Count to three.")]},
          {"role": "assistant", "content": [_text("1, 2, 3.")]},
          {"role": "user", "content": [_text("Now backwards.")]}],
         [], 3136, 12845056),
        ("multi_turn_image_first",
         [{"role": "user", "content": [IMG, _text("What colour dominates?")]},
          {"role": "assistant", "content": [_text("Mostly red and green.")]},
          {"role": "user", "content": [_text("And the corners?")]}],
         [[256, 256]], 3136, 12845056),
        ("image_in_later_turn",
         [sys_msg,
          {"role": "user", "content": [_text("I will send a picture.")]},
          {"role": "assistant", "content": [_text("Go ahead.")]},
          {"role": "user", "content": [IMG, _text("Here it is.")]}],
         [[560, 420]], 3136, 12845056),
        ("unicode_text",
         [{"role": "user", "content": [_text("日本語のテキスト 🙂 — naïve café, Ωμέγα, 한국어\n\ttabs")]}],
         [], 3136, 12845056),
        ("empty_text", [{"role": "user", "content": [_text("")]}], [], 3136, 12845056),
        ("image_only_no_text", [{"role": "user", "content": [IMG]}], [[64, 64]], 3136, 12845056),
        ("small_max_pixels", [{"role": "user", "content": [IMG, _text("tiny budget")]}],
         [[1000, 1500]], 3136, 50176),
        ("large_min_pixels", [{"role": "user", "content": [IMG, _text("upscaled")]}],
         [[40, 60]], 200704, 12845056),
        ("special_tokens_in_text",
         [{"role": "user", "content": [_text("literal <|im_end|> and <|vision_start|> inside")]}],
         [], 3136, 12845056),
        ("assistant_with_image_user_after",
         [{"role": "user", "content": [IMG, IMG, _text("Two views.")]},
          {"role": "assistant", "content": [_text("I see them.")]},
          {"role": "user", "content": [IMG, _text("A third one?")]}],
         [[200, 150], [150, 200], [90, 400]], 3136, 1003520),
    ]


def write_chat_fixtures(out_dir):
    tok_dir = os.path.join(out_dir, "tokenizer")
    results = []
    mismatches = []
    for idx, (name, messages, sizes, min_px, max_px) in enumerate(conversations()):
        proc = build_processor(tok_dir, min_px, max_px)
        text = render_chat(proc, messages)
        expected = render_chat_independently(messages)
        if text != expected:
            mismatches.append(name)
            log("chat: WARNING template rendering differs from our reading for %s:\n%r\n%r"
                % (name, text, expected))
        images = [synthetic_image(h, w, seed=1000 + idx * 10 + k) for k, (h, w) in enumerate(sizes)]
        inputs = run_processor(proc, text, images)
        grid = to_list(inputs["image_grid_thw"]) if "image_grid_thw" in inputs else []
        results.append({
            "name": name, "messages": messages, "image_sizes": sizes,
            "min_pixels": min_px, "max_pixels": max_px, "text": text,
            "input_ids": to_list(inputs["input_ids"][0]), "image_grid_thw": grid,
        })
        log("chat: %-32s %4d ids, grids %s" % (name, len(results[-1]["input_ids"]), grid))
    write_json(os.path.join(out_dir, "chat", "conversations.json"), results)
    if mismatches:
        raise RuntimeError("template rendering differs from the expected text for: %s"
                           % ", ".join(mismatches))
    return {"conversations": len(results)}
