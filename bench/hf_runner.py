#!/usr/bin/env python3
"""transformers side of the benchmarks, run in its own process by cpu_bench.py / gpu_bench.py.

    hf_runner.py --model DIR --device cpu|cuda --dtype fp32|bf16 --scenarios FILE.json
    hf_runner.py --hardware            (GPU copy bandwidth and bf16 GEMM throughput)

A scenario is {"name", "images": [paths], "prompt", "max_new_tokens"}. For each: preprocess
(image decode + chat template + processor), the vision tower alone, the prompt forward
(vision + decoder, logits of the last position only), then greedy decode steps with the KV cache
(a plain loop, no generate() overhead, no EOS stop). Prints one JSON object as the last line.
"""

import argparse
import json
import os
import resource
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def sync(device):
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def load_processor(model_dir):
    """What a user gets (AutoProcessor: transformers' default image backend); PIL one if that fails."""
    try:
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(model_dir)
    except Exception as exc:
        print("AutoProcessor failed (%s); using the PIL processor" % exc, file=sys.stderr)
        from tools.reference.processor import build_processor

        return build_processor(os.path.join(REPO, "tests", "fixtures", "tokenizer"))


def run_scenario(model, processor, device, dtype, scenario):
    import torch
    from PIL import Image

    if hasattr(model.model, "rope_deltas"):
        model.model.rope_deltas = None
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = {"name": scenario["name"]}
    sync(device)
    t0 = time.perf_counter()
    images = [Image.open(p).convert("RGB") for p in scenario.get("images", [])]
    content = [{"type": "image"} for _ in images] + [{"type": "text", "text": scenario["prompt"]}]
    text = processor.apply_chat_template([{"role": "user", "content": content}],
                                         add_generation_prompt=True, tokenize=False)
    if isinstance(text, (list, tuple)):
        text = text[0]
    kwargs = {"text": [text], "return_tensors": "pt"}
    if images:
        kwargs["images"] = images
    inputs = processor(**kwargs).to(device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    sync(device)
    t1 = time.perf_counter()
    with torch.no_grad():
        out = model(**inputs, use_cache=True, logits_to_keep=1)
        next_tok = out.logits[:, -1:].argmax(-1)
        sync(device)
        t2 = time.perf_counter()
        past = out.past_key_values
        del out
        n = int(scenario.get("max_new_tokens", 1))
        t3 = time.perf_counter()
        for _ in range(max(0, n - 1)):
            out = model(input_ids=next_tok, past_key_values=past, use_cache=True, logits_to_keep=1)
            past = out.past_key_values
            next_tok = out.logits[:, -1:].argmax(-1)
        sync(device)
        t4 = time.perf_counter()
        del past
        vision_ms = None
        if images:
            sync(device)
            tv = time.perf_counter()
            model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
            sync(device)
            vision_ms = (time.perf_counter() - tv) * 1e3
    prompt_tokens = int(inputs["input_ids"].shape[1])
    forward_ms = (t2 - t1) * 1e3
    prefill_ms = forward_ms - (vision_ms or 0.0)
    result.update({
        "prompt_tokens": prompt_tokens,
        "image_grid_thw": inputs["image_grid_thw"].tolist() if images else [],
        "preprocess_ms": (t1 - t0) * 1e3,
        "vision_ms": vision_ms,
        "forward_ms": forward_ms,
        "prefill_ms": prefill_ms,
        "prefill_tokens_per_s": prompt_tokens / (prefill_ms / 1e3) if prefill_ms > 0 else None,
        "ttft_ms": (t2 - t0) * 1e3,
        "decode_steps": max(0, n - 1),
        "decode_ms": (t4 - t3) * 1e3,
        "decode_tokens_per_s": (n - 1) / (t4 - t3) if n > 1 and t4 > t3 else None,
    })
    if device == "cuda":
        result["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
    return result


def hardware():
    """Device-to-device copy bandwidth (4 GB) and dense bf16 GEMM throughput (8192^3)."""
    import torch

    out = {"gpu": torch.cuda.get_device_name(0)}
    n = 4 * 1024 ** 3
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    best = min(times)
    out["copy_bytes"] = n
    out["copy_GBps"] = 2 * n / best / 1e9  # read + write
    # Host to device from pinned memory: the link streamed weights cross (1 GB copies).
    host = torch.empty(1024 ** 3, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(1024 ** 3, dtype=torch.uint8, device="cuda")
    times = []
    for _ in range(6):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dev.copy_(host, non_blocking=True)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    out["h2d_GBps"] = host.numel() / min(times[1:]) / 1e9
    del host, dev, src, dst
    torch.cuda.empty_cache()
    m = 8192
    a = torch.randn(m, m, dtype=torch.bfloat16, device="cuda")
    b = torch.randn(m, m, dtype=torch.bfloat16, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    times = []
    for _ in range(10):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    out["gemm_bf16_TFLOPs"] = 2 * m ** 3 / min(times) / 1e12
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model")
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp32", "fp16"])
    p.add_argument("--attn", default="sdpa")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--scenarios", help="JSON file with a list of scenarios")
    p.add_argument("--hardware", action="store_true")
    p.add_argument("--max-memory", help="GPU budget for device_map='auto', e.g. 4GiB: the rest "
                   "of the model is offloaded to the CPU (accelerate's hooks)")
    args = p.parse_args()
    if args.hardware:
        print(json.dumps(hardware()), flush=True)
        return 0

    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.set_num_threads(args.threads)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}[args.dtype]
    with open(args.scenarios) as f:
        scenarios = json.load(f)
    t0 = time.perf_counter()
    kwargs = {"dtype": dtype, "attn_implementation": args.attn}
    if args.device == "cuda":
        kwargs["device_map"] = "cuda"
        if args.max_memory:
            kwargs["device_map"] = "auto"
            kwargs["max_memory"] = {0: args.max_memory, "cpu": "200GiB"}
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.model, **kwargs).eval()
    except Exception as exc:
        if "device_map" not in kwargs:
            raise
        print("device_map load failed (%s); loading then moving" % exc, file=sys.stderr)
        kwargs.pop("device_map")
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(args.model, **kwargs)
        model = model.to(args.device).eval()
    processor = load_processor(args.model)
    sync(args.device)
    result = {"load_ms": (time.perf_counter() - t0) * 1e3, "device": args.device,
              "dtype": args.dtype, "attn": args.attn, "torch": torch.__version__,
              "processor": type(getattr(processor, "image_processor", processor)).__name__,
              "threads": torch.get_num_threads(), "scenarios": []}
    import transformers

    result["transformers"] = transformers.__version__
    if args.device == "cuda":
        result["weights_bytes"] = torch.cuda.memory_allocated()
    # Warm-up: kernels, allocator, thread pools (not timed).
    run_scenario(model, processor, args.device, dtype,
                 {"name": "warmup", "prompt": "Hello there.", "max_new_tokens": 3})
    for scenario in scenarios:
        try:
            result["scenarios"].append(run_scenario(model, processor, args.device, dtype,
                                                    scenario))
        except Exception as exc:
            result["scenarios"].append({"name": scenario["name"],
                                        "error": "%s: %s" % (type(exc).__name__, exc)})
        finally:
            if args.device == "cuda":
                torch.cuda.empty_cache()
        print("hf %s: %s" % (scenario["name"], json.dumps(result["scenarios"][-1])),
              file=sys.stderr, flush=True)
    result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
