"""Shared pieces of the qwenvl-vs-transformers benchmarks: inputs, runners, tables.

Both engines get the same image files and prompt text; qwenvl is timed from its `--json` summary
(timings measured inside the process, load excluded from TTFT), transformers by hf_runner.py in a
child process (so its peak RSS / GPU peak belong to that run only).
"""

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

DEFAULT_QWENVL = os.path.join(REPO, "build", "qwenvl")
RESULTS_DIR = os.path.join(BENCH_DIR, "results")


def log(*parts):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *parts, flush=True)


def make_photo(path, width, height, seed=0, quality=90):
    """A photo-like JPEG of the given size: skimage astronaut resized, plus seeded noise."""
    import numpy as np
    from PIL import Image
    from skimage import data

    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    base = Image.fromarray(data.astronaut()).resize((width, height), Image.BICUBIC)
    rng = np.random.default_rng(seed)
    arr = np.asarray(base).astype(np.int16) + rng.integers(-10, 11, size=(height, width, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=quality)
    return path


def long_prompt(target_tokens, tokenizer_json):
    """English text of about target_tokens tokens (counted with the real tokenizer)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    sentences = [
        "The committee reviewed the quarterly figures and asked for a second opinion.",
        "Rain moved across the valley while the old bridge creaked under the carts.",
        "She wrote the numbers 1729, 4104 and 13832 on the board and waited.",
        "A careful engineer measures twice, profiles once, and optimizes the hot loop.",
    ]
    text, i = "", 0
    while len(tok.encode(text).ids) < target_tokens:
        text += " ".join(sentences[(i + k) % 4] for k in range(4)) + "\n"
        i += 1
    text += "Summarize the text above."
    return text


def run_qwenvl(binary, model_dir, prompt, images=(), device="cuda", max_new_tokens=1,
               threads=None, extra=(), timeout=600):
    """One `qwenvl generate --json` run; returns its summary (last stdout line) plus wall time."""
    cmd = [binary, "generate", "--model", model_dir, "--prompt", prompt, "--device", device,
           "--max-new-tokens", str(max_new_tokens), "--ignore-eos", "--temperature", "0",
           "--repetition-penalty", "1.0", "--json"]
    for image in images:
        cmd += ["--image", image]
    if threads:
        cmd += ["--threads", str(threads)]
    cmd += list(extra)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError("qwenvl failed (%d): %s" % (proc.returncode, proc.stderr.strip()[-800:]))
    lines = [l for l in proc.stdout.strip().splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError("qwenvl printed no JSON summary: %s" % proc.stdout[-500:])
    summary = json.loads(lines[-1])
    summary["wall_s"] = wall
    t = summary.get("timings", {})
    summary["ttft_ms"] = t.get("preprocess_ms", 0) + t.get("vision_ms", 0) + t.get("prefill_ms", 0)
    if t.get("prefill_ms"):
        summary["prefill_tokens_per_s"] = summary["prompt_tokens"] / (t["prefill_ms"] / 1e3)
    return summary


def run_hf(args, timeout=600):
    """bench/hf_runner.py in a child process; returns its JSON result."""
    cmd = [sys.executable, os.path.join(BENCH_DIR, "hf_runner.py")] + list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(proc.stderr[-3000:])
    lines = [l for l in proc.stdout.strip().splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("hf_runner failed (%d): %s" % (proc.returncode, proc.stderr[-1500:]))
    return json.loads(lines[-1])


def cut_config(size, root):
    """'32B-16L': the official 32B config cut to 16 layers, written under root (its path); a plain
    size ('7B'): None, the official config."""
    if "-" not in size:
        return None
    base, layers = size.split("-")
    with open(os.path.join(REPO, "tests", "fixtures", "configs", base + ".json")) as f:
        cfg = json.load(f)
    cfg["num_hidden_layers"] = int(layers.rstrip("L"))
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, "config-%s.json" % size)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def checkpoint_weight_bytes(model_dir):
    """Bytes of all tensors, of the text decoder's per-token reads, and of the vision tower."""
    import struct

    files = [f for f in os.listdir(model_dir) if f.endswith(".safetensors")]
    total = vision = embed = head = 0
    for f in files:
        with open(os.path.join(model_dir, f), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            size = meta["data_offsets"][1] - meta["data_offsets"][0]
            total += size
            if name.startswith(("visual.", "model.visual.")):
                vision += size
            elif name.endswith("embed_tokens.weight"):
                embed = size
            elif name == "lm_head.weight":
                head = size
    # A decode step reads every decoder weight once; the embedding is only gathered (one row),
    # unless it is tied, when it is also the lm_head.
    decode = total - vision - embed + (embed if head == 0 else 0)
    return {"total": total, "vision": vision, "decode_per_token": decode}


def machine_info():
    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["gpu"] = out.stdout.strip()
    except Exception:
        info["gpu"] = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["commit"] = current_commit()
    return info


def current_commit():
    """The commit the programs were built from, or None."""
    # The GPU machine receives a copy of the tree without .git: the commit travels in
    # QWENVL_COMMIT (tools/device/gpu_session.sh sets it).
    commit = os.environ.get("QWENVL_COMMIT")
    if commit:
        return commit
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or None
    except Exception:
        return None


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def slug(name):
    """The machine part of a results file's name: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3',
    'Intel(R) Xeon(R) Processor' -> 'intel-xeon-processor'."""
    name = re.sub(r"\((r|tm)\)", "", (name or "").lower())
    return re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "unknown"


# Fields of a `qwenvl generate --json` summary that are inputs or raw outputs (token ids, text),
# not figures: results files leave them out.
BULKY_FIELDS = ("prompt_token_ids", "tokens", "text")


def figures_of(summary):
    return {k: v for k, v in summary.items() if k not in BULKY_FIELDS}


def fmt(value, digits=1):
    if value is None:
        return "—"
    if isinstance(value, float):
        return ("%." + str(digits) + "f") % value
    return str(value)


def ratio(a, b):
    """a / b as 'x.xx×' or '—'."""
    if a is None or b is None or b == 0:
        return "—"
    return "%.2f×" % (a / b)


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        out.append("| " + " | ".join(fmt(c) for c in row) + " |")
    return "\n".join(out)


def write_results(name, markdown, data, results_dir=RESULTS_DIR):
    """<results_dir>/<name>.md and .json, replacing the previous run's; returns the markdown path.

    name is '<gpu or host slug>-<benchmark>', e.g. 'nvidia-h100-80gb-hbm3-3B': no date or commit
    in it, so that a run replaces the last one; the markdown's header line and the JSON's "date"
    and "commit" fields say when and at which commit it ran. The JSON is compact and holds
    figures, not inputs (see figures_of)."""
    os.makedirs(results_dir, exist_ok=True)
    data = dict({"date": today(), "commit": current_commit()}, **data)
    md_path = os.path.join(results_dir, name + ".md")
    with open(md_path, "w") as f:
        f.write(markdown)
    with open(os.path.join(results_dir, name + ".json"), "w") as f:
        json.dump(data, f, separators=(",", ":"), default=str)
    log("wrote", md_path)
    return md_path
