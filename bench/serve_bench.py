#!/usr/bin/env python3
"""`qwenvl serve` under load (continuous batching) beside transformers run one request at a time,
on full-size random checkpoints.

    python3 bench/serve_bench.py [--models 3B] [--concurrency 1,8,32,128] [--qwenvl build/qwenvl]

Workloads: (a) text prompts of 100-1,000 tokens, (b) a 1120x700 photo and a question, each
request its own photo (they differ in one patch, so neither the image-embedding cache nor the
prefix cache serves them), (c) "image-same": every request the same photo with its own question
(both caches serve it: the embeddings and the KV blocks up to the photo's end); 128 output tokens
each (ignore_eos). At each concurrency C, C client threads each send requests
back to back (streamed, so each token's arrival is seen) until 2·C requests (at least 8) are done.
Per level: output tokens/s and requests/s over the level's wall time, TTFT and inter-token latency
p50/p99 as the clients saw them, and the GPU's peak memory (nvidia-smi, polled). transformers
runs the same two requests one after another (its sequential throughput: 1 / (TTFT + 127 decode
steps)). Then the agreement check: 16 text requests (32 greedy tokens, top-2 logprobs) alone, then
all 16 at once; their tokens must agree up to the first step where the alone run's top-2 margin
is under 1e-2; and again with a server started with --batch-invariant, beside its text
throughput at the highest concurrency. Writes <gpu>-serve-<models>.md/.json into --results-dir.
"""

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_QWENVL, REPO, log, machine_info, make_photo,  # noqa: E402
                          markdown_table, run_hf, slug, today, write_results)
from offload_bench import MemoryWatch  # noqa: E402

OUTPUT_TOKENS = 128
WORDS = ("the river bridge engineer measured quarterly figures rain valley committee second "
         "opinion careful profile loop numbers board waited story lighthouse keeper").split()


def make_photos(directory, count, width, height):
    """`count` JPEGs of make_photo's picture, photo i with its own 28x28 patch; their paths."""
    import numpy as np
    from PIL import Image

    base = np.asarray(Image.open(make_photo(os.path.join(directory, "base.jpg"), width,
                                            height)))
    paths = []
    for i in range(count):
        path = os.path.join(directory, "photo-%04d.jpg" % i)
        if not os.path.exists(path):
            arr = base.copy()
            y, x = 28 * (i % (height // 28)), 28 * ((i // (height // 28)) % (width // 28))
            arr[y:y + 28, x:x + 28] = [(i * 37) % 256, (i * 91) % 256, (i * 53) % 256]
            Image.fromarray(arr).save(path, quality=90)
        paths.append(path)
    return paths


def text_prompt(rng):
    """About 100-1,000 tokens of words (one token each, roughly) and a request."""
    n = rng.randint(100, 1000)
    return " ".join(rng.choice(WORDS) for _ in range(n)) + "\nSummarize the text above."


class Server:
    """`qwenvl serve` on a free port; stopped with SIGTERM."""

    def __init__(self, binary, model_dir, max_num_seqs, kv_tokens, media_dir, extra=()):
        cmd = [binary, "serve", "--model", model_dir, "--port", "0", "--max-num-seqs",
               str(max_num_seqs), "--kv-cache-tokens", str(kv_tokens), "--max-context", "4096",
               "--max-queue", "4096", "--allowed-media-dir", media_dir] + list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = None
        self.banner = []
        for line in self.proc.stdout:
            self.banner.append(line.strip())
            if "listening on http://" in line:
                self.port = int(line.rsplit(":", 1)[1].split("/")[0])
                break
        if self.port is None:
            raise RuntimeError("qwenvl serve did not start: %s" % self.proc.stderr.read()[-1500:])
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def chat(port, content, max_tokens, stream=True, logprobs=False, timeout=600):
    """One chat completion; returns (token arrival times, tokens text, usage, logprobs)."""
    body = {"model": "m", "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = 2
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError("HTTP %d: %s" % (response.status, response.read()[:300]))
    arrivals, usage, lps = [], None, []
    if not stream:
        reply = json.loads(response.read())
        conn.close()
        lp = (reply["choices"][0].get("logprobs") or {}).get("content") or []
        return [time.perf_counter() - t0], reply["choices"][0]["message"]["content"], \
            reply.get("usage"), lp
    buffer = b""
    while True:
        chunk = response.read1(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = event.decode().removeprefix("data: ").strip()
            if data == "[DONE]":
                continue
            message = json.loads(data)
            if message.get("usage"):
                usage = message["usage"]
            for choice in message.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    arrivals.append(time.perf_counter() - t0)
    conn.close()
    return arrivals, None, usage, lps


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def level_requests(concurrency):
    return max(8, 2 * concurrency)


def run_level(port, workload, concurrency, image_urls, seed):
    """C clients, each sending requests back to back until 2·C (at least 8) are done; request i
    of an image workload shows image_urls[i]."""
    total = level_requests(concurrency)
    rng = random.Random(seed)
    contents = []
    for i in range(total):
        if workload == "text":
            contents.append(text_prompt(rng))
        else:
            contents.append([{"type": "image_url", "image_url": {"url": image_urls[i]}},
                             {"type": "text", "text": "Describe this photo in detail. (%d)" %
                              rng.randint(0, 10 ** 6)}])
    lock = threading.Lock()
    next_index = [0]
    ttfts, itls, completion, errors = [], [], [0], []

    def client():
        while True:
            with lock:
                if next_index[0] >= total:
                    return
                i = next_index[0]
                next_index[0] += 1
            try:
                arrivals, _, usage, _ = chat(port, contents[i], OUTPUT_TOKENS)
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(str(exc))
                continue
            with lock:
                if arrivals:
                    ttfts.append(arrivals[0])
                    itls.extend(b - a for a, b in zip(arrivals, arrivals[1:]))
                completion[0] += (usage or {}).get("completion_tokens", len(arrivals))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = total - len(errors)
    return {"workload": workload, "concurrency": concurrency, "requests": done,
            "errors": errors[:3], "wall_s": wall, "output_tokens": completion[0],
            "output_tokens_per_s": completion[0] / wall, "requests_per_s": done / wall,
            "ttft_p50_ms": (percentile(ttfts, 50) or 0) * 1e3,
            "ttft_p99_ms": (percentile(ttfts, 99) or 0) * 1e3,
            "itl_p50_ms": (percentile(itls, 50) or 0) * 1e3,
            "itl_p99_ms": (percentile(itls, 99) or 0) * 1e3}


def agreement(port, seed):
    """16 text requests alone (with top-2 logprobs), then all at once: tokens compared until the
    first step where the alone margin is under 1e-2."""
    rng = random.Random(seed)
    prompts = [text_prompt(rng)[: rng.randint(200, 2000)] for _ in range(16)]

    def run(p):
        _, _, _, lps = chat(port, p, 32, stream=False, logprobs=True)
        return lps

    alone = [run(p) for p in prompts]
    together = [None] * 16

    def worker(i):
        together[i] = run(prompts[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    compared = differing = parted = 0
    partings = []  # (step, alone margin) where a request's tokens first differ
    for a, b in zip(alone, together):
        for step, (x, y) in enumerate(zip(a, b)):
            if x["token"] == y["token"]:
                compared += 1
                continue
            top = x.get("top_logprobs") or []
            margin = top[0]["logprob"] - top[1]["logprob"] if len(top) > 1 else 1.0
            partings.append([step, round(margin, 4)])
            if margin < 1e-2:
                parted += 1
            else:
                differing += 1
            break
    return {"requests": 16, "tokens_compared": compared, "parted_at_small_margin": parted,
            "differing_above_margin": differing, "partings": partings}


def invariant_run(args, data, size, model_dir, levels, kv_tokens, image_dir):
    """The agreement check and the text level at the highest concurrency on a server started
    with --batch-invariant."""
    server = None
    try:
        server = Server(args.qwenvl, model_dir, max(max(levels), 16), kv_tokens, image_dir,
                        ["--batch-invariant"])
        data["agreement_invariant"][size] = agreement(server.port, seed=7)
        log("agreement %s, batch-invariant: %s" % (size, data["agreement_invariant"][size]))
        r = run_level(server.port, "text", max(levels), [], seed=max(levels))
        r.update({"model": size, "workload": "text (--batch-invariant)"})
        data["levels"].append(r)
        log(json.dumps(r))
    except Exception as exc:  # noqa: BLE001
        data["errors"].append("%s qwenvl --batch-invariant: %s" % (size, exc))
        log(data["errors"][-1])
    finally:
        if server:
            server.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="3B")
    p.add_argument("--concurrency", default="1,8,32,128")
    p.add_argument("--workloads", default="text,image,image-same")
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--budget-s", type=float, default=560.0)
    p.add_argument("--no-transformers", action="store_true")
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    args = p.parse_args()
    t_start = time.time()

    def time_left():
        return args.budget_s - (time.time() - t_start)

    levels = [int(c) for c in args.concurrency.split(",")]
    models = [m for m in args.models.split(",") if m]
    from tools.build_random_checkpoint import ensure_checkpoint

    hw = run_hf(["--hardware"], timeout=180)
    image_dir = os.path.join(args.ckpt_root, "images")
    photo = make_photo(os.path.join(image_dir, "1120x700.jpg"), 1120, 700)
    # Photos no request of any level or model shares with another.
    photos = make_photos(image_dir, len(models) * sum(level_requests(c) for c in levels), 1120,
                         700)
    next_photo = 0
    data = {"hardware": hw, "levels": [], "transformers": [], "agreement": {},
            "agreement_invariant": {}, "errors": []}
    for size in models:
        model_dir = os.path.join(args.ckpt_root, size)
        ensure_checkpoint(size, model_dir, device="cuda")
        # The image workloads' requests reach the server as file:// URLs.
        same_photo = "file://" + photo
        kv_tokens = max(levels) * (1000 + 40 + OUTPUT_TOKENS) + 4096
        server = None
        try:
            with MemoryWatch() as watch:
                server = Server(args.qwenvl, model_dir, max(max(levels), 16), kv_tokens,
                                image_dir)
                log("serve: %s" % " | ".join(server.banner[-2:]))
                for workload in args.workloads.split(","):
                    for c in levels:
                        if time_left() < 60:
                            data["errors"].append("%s %s c=%d: skipped (time)" % (size, workload, c))
                            continue
                        n = level_requests(c)
                        if workload == "image":
                            urls = ["file://" + q for q in photos[next_photo:next_photo + n]]
                            next_photo += n
                        else:
                            urls = [same_photo] * n
                        r = run_level(server.port, workload, c, urls, seed=c)
                        r["model"] = size
                        data["levels"].append(r)
                        log(json.dumps(r))
                if time_left() > 60:
                    data["agreement"][size] = agreement(server.port, seed=7)
                    log("agreement %s: %s" % (size, data["agreement"][size]))
            data["peak_gpu_bytes_%s" % size] = watch.peak - watch.before
        except Exception as exc:  # noqa: BLE001
            data["errors"].append("%s qwenvl: %s" % (size, exc))
            log(data["errors"][-1])
        finally:
            if server:
                server.stop()
        if time_left() > 120:
            invariant_run(args, data, size, model_dir, levels, kv_tokens, image_dir)
        if not args.no_transformers and time_left() > 90:
            scen = [{"name": "text", "images": [], "prompt": text_prompt(random.Random(1)),
                     "max_new_tokens": OUTPUT_TOKENS, "kind": "decode"},
                    {"name": "image", "images": [photo], "prompt": "Describe this photo in detail.",
                     "max_new_tokens": OUTPUT_TOKENS, "kind": "decode"}]
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(scen, f)
            try:
                h = run_hf(["--model", model_dir, "--device", "cuda", "--dtype", "bf16", "--attn",
                            "sdpa", "--scenarios", f.name], timeout=max(60, int(time_left())))
                for s in h["scenarios"]:
                    seconds = s["ttft_ms"] / 1e3 + s["decode_ms"] / 1e3
                    s.update({"model": size, "requests_per_s": 1 / seconds,
                              "output_tokens_per_s": OUTPUT_TOKENS / seconds})
                    data["transformers"].append(s)
            except Exception as exc:  # noqa: BLE001
                data["errors"].append("%s transformers: %s" % (size, exc))

    def f(v, spec="%.1f"):
        return spec % v if isinstance(v, (int, float)) else "—"

    rows = [[r["model"], r["workload"], str(r["concurrency"]), str(r["requests"]),
             f(r["output_tokens_per_s"], "%.0f"), f(r["requests_per_s"], "%.2f"),
             f(r["ttft_p50_ms"], "%.0f"), f(r["ttft_p99_ms"], "%.0f"),
             f(r["itl_p50_ms"], "%.1f"), f(r["itl_p99_ms"], "%.1f")] for r in data["levels"]]
    rows += [[s["model"], s["name"], "1 (transformers, sequential)", "1",
              f(s["output_tokens_per_s"], "%.0f"), f(s["requests_per_s"], "%.2f"),
              f(s["ttft_ms"], "%.0f"), "—",
              f(1e3 / s["decode_tokens_per_s"] if s.get("decode_tokens_per_s") else None, "%.1f"),
              "—"] for s in data["transformers"]]
    info = machine_info()
    md = ["# Serving under load: qwenvl serve (continuous batching) vs transformers sequential", "",
          "- %s, commit %s; %s" % (today(), info.get("commit"), info.get("gpu")),
          "- random-weight checkpoints of the official configs; %d output tokens per request "
          "(ignore_eos, greedy); text: 100-1,000 word prompts; image: a 1120x700 JPEG "
          "(1,000 image tokens) of its own and a question; image-same: one JPEG for all "
          "requests (served by the image-embedding and prefix caches)" % OUTPUT_TOKENS,
          "- C client threads send requests back to back (streamed) until 2·C (at least 8) are "
          "done; tokens/s and requests/s over the level's wall time; TTFT and ITL as the "
          "clients saw them (HTTP, SSE, detokenization included)", "",
          markdown_table(["model", "workload", "concurrency", "requests", "output tok/s",
                          "requests/s", "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms",
                          "ITL p99 ms"], rows), ""]
    for size in models:
        peak = data.get("peak_gpu_bytes_%s" % size)
        if peak:
            md.append("- %s: peak GPU memory of the server (nvidia-smi, context included): %.2f "
                      "GiB" % (size, peak / 2 ** 30))
        a = data["agreement"].get(size)
        if a:
            md.append("- %s agreement, 16 requests alone vs together (32 greedy tokens): %d tokens "
                      "equal, %d parted where the alone margin was under 1e-2, %d differed above "
                      "it" % (size, a["tokens_compared"], a["parted_at_small_margin"],
                              a["differing_above_margin"]))
            md.append("  (step, alone margin) where they parted: %s" % a["partings"])
        a = data["agreement_invariant"].get(size)
        if a:
            md.append("- %s agreement with --batch-invariant: %d tokens equal, %d parted where the "
                      "alone margin was under 1e-2, %d differed above it; partings: %s"
                      % (size, a["tokens_compared"], a["parted_at_small_margin"],
                         a["differing_above_margin"], a["partings"]))
    if data["errors"]:
        md += ["", "## Errors and skips", ""] + ["- " + e for e in data["errors"]]
    md.append("")
    write_results(slug(hw["gpu"]) + "-serve-" + "-".join(models), "\n".join(md), data,
                  args.results_dir)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
