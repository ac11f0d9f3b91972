#!/usr/bin/env python3
"""Video input: qwenvl beside OpenCV + transformers on the GPU machine (issue 24's measurements).

    python3 bench/video_bench.py [--parts videos,preprocess,rss,ttft] [--models 3B,7B]
                                 [--qwenvl build/qwenvl] [--videos-dir DIR] [--results-dir DIR]

Parts, each in its own try/except (a failure is listed under errors, the others still report):
  videos      the test videos, written by OpenCV's VideoWriter (h264 'avc1' where this OpenCV
              build encodes it, else MPEG-4 'mp4v'; the codec is recorded) from cheap moving
              synthetic frames: 60 s 1080p, 30 s 720p and 10 min 480p, all at 30 fps (a codec
              projected to take over --make-limit-s for a video gives way to the next). Kept in
              --videos-dir and reused while the machine stays warm; the time to make each is
              recorded. Where OpenCV is missing (a developer machine), the ffmpeg CLI makes them.
  preprocess  the 60 s 1080p video at 2 fps: `qwenvl preprocess --video --json` (its decode and
              total times, and the process's wall time) beside a Python pipeline in the same run:
              OpenCV seeks to and reads the frame indices qwen-vl-utils picks, torchvision resizes
              them as qwen-vl-utils does (bicubic, antialias) and transformers' video processor
              (Qwen2VLVideoProcessor) makes pixel_values_videos. Median of --runs each.
  rss         the peak host RSS of `qwenvl preprocess --video` on the 10-minute video (the child's
              own ru_maxrss, from wait4), beside the bytes of its sampled frames' pixel values
              (float32) and of every frame of the video decoded.
  ttft        per model of --models: time to first token for the 30 s 720p video at 2 fps,
              `qwenvl generate --device cuda --video ... --max-new-tokens 1 --json` (preprocess +
              vision + prefill, load excluded; the best of --runs) and transformers (bf16, flash
              attention 2 when installed, else sdpa; OpenCV reads the frames qwenvl sampled,
              torchvision resizes them to qwenvl's size, the checkpoint's processor) in a child
              process; random full-size checkpoints under --ckpt-root, built as gpu_bench.py
              builds them.

Writes <gpu>-video.md/.json (or <gpu>-video-<models>.md/.json when ttft is among the parts) into
--results-dir. tools/device/gpu_session.sh runs it as stages videobench, videobench3B and
videobench7B.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (DEFAULT_QWENVL, REPO, log, machine_info, markdown_table,  # noqa: E402
                          ratio, run_qwenvl, slug, today, write_results)

PROMPT = "Describe this video."
FPS = 2.0  # frames sampled per second, qwen-vl-utils' default

# name: (width, height, frames per second, seconds)
VIDEOS = {
    "1080p_60s": (1920, 1080, 30, 60),
    "720p_30s": (1280, 720, 30, 30),
    "480p_10min": (640, 480, 30, 600),
}
PREPROCESS_VIDEO, TTFT_VIDEO, RSS_VIDEO = "1080p_60s", "720p_30s", "480p_10min"

# qwen-vl-utils' constants (vision_process.py)
IMAGE_FACTOR, FRAME_FACTOR = 28, 2
FPS_MIN_FRAMES, FPS_MAX_FRAMES = 4, 768
VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS = 128 * 28 * 28, 768 * 28 * 28
VIDEO_TOTAL_PIXELS = int(float(128000 * 28 * 28 * 0.9))


# ---- the test videos

def synthetic_frames(width, height, count):
    """Cheap moving BGR frames: a textured background scrolling a few pixels a frame, a white box
    crossing it and the frame number in a corner (so sampled frames differ)."""
    import cv2
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(1, width - 1), yy * 255 // max(1, height - 1),
                     ((xx // 32 + yy // 32) % 2) * 160 + 40], axis=-1).astype(np.uint8)
    wide = np.concatenate([base, base], axis=1)  # a scroll is then a slice
    box = max(8, height // 4)
    for i in range(count):
        shift = (4 * i) % width
        frame = np.ascontiguousarray(wide[:, shift:shift + width])
        x = (7 * i) % max(1, width - box)
        cv2.rectangle(frame, (x, height // 3), (x + box, height // 3 + box), (255, 255, 255), -1)
        cv2.putText(frame, str(i), (16, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 255), 3)
        yield frame


def opencv_frame_count(path):
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


def write_with_opencv(path, width, height, fps, frames, codecs, limit_s):
    """Writes the video with the first of `codecs` this OpenCV can encode and read back within
    about limit_s seconds (judged after a tenth of the frames); returns it."""
    import cv2

    for codec in codecs:
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if not writer.isOpened():
            writer.release()
            continue
        t0, too_slow = time.perf_counter(), False
        for i, frame in enumerate(synthetic_frames(width, height, frames)):
            writer.write(frame)
            if i == frames // 10 and codec != codecs[-1]:
                projected = (time.perf_counter() - t0) * frames / (i + 1)
                if projected > limit_s:
                    log("%s would take about %.0f s for %s; trying the next codec"
                        % (codec, projected, os.path.basename(path)))
                    too_slow = True
                    break
        writer.release()
        if not too_slow and os.path.exists(path) and opencv_frame_count(path) > 0:
            return codec
        if not too_slow:
            log("OpenCV's %s writer gave no readable video; trying the next codec" % codec)
    raise RuntimeError("OpenCV can write none of %s here" % ", ".join(codecs))


def write_with_ffmpeg_cli(path, width, height, fps, seconds):
    """Where OpenCV is missing (developer machines): ffmpeg's testsrc2 in MPEG-4 part 2."""
    if not shutil.which("ffmpeg"):
        raise RuntimeError("neither OpenCV nor the ffmpeg CLI is available to make test videos")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=%dx%d:rate=%d:duration=%g" % (width, height, fps, seconds),
                    "-c:v", "mpeg4", "-q:v", "5", "-pix_fmt", "yuv420p", path], check=True)
    return "mpeg4 (ffmpeg CLI, OpenCV missing)"


def make_videos(names, videos_dir, duration_scale, codecs=("avc1", "mp4v"), limit_s=60.0):
    """{name: {path, codec, make_s, ...}} for the videos asked for, made or reused."""
    os.makedirs(videos_dir, exist_ok=True)
    import importlib.util

    have_opencv = importlib.util.find_spec("cv2") is not None
    out = {}
    for name in names:
        width, height, fps, seconds = VIDEOS[name]
        seconds *= duration_scale
        frames = max(2, int(round(seconds * fps)))
        suffix = "" if duration_scale == 1 else "_x%g" % duration_scale
        path = os.path.join(videos_dir, name + suffix + ".mp4")
        stamp = path + ".json"
        spec = {"width": width, "height": height, "fps": fps, "frames": frames}
        if os.path.exists(path) and os.path.exists(stamp):
            with open(stamp) as f:
                made = json.load(f)
            if made.get("spec") == spec:
                out[name] = dict(made, path=path, reused=True)
                continue
        t0 = time.perf_counter()
        if have_opencv:
            codec = write_with_opencv(path, width, height, fps, frames, codecs, limit_s)
        else:
            codec = write_with_ffmpeg_cli(path, width, height, fps, seconds)
        made = {"spec": spec, "codec": codec, "make_s": time.perf_counter() - t0,
                "bytes": os.path.getsize(path)}
        with open(stamp, "w") as f:
            json.dump(made, f)
        out[name] = dict(made, path=path, reused=False)
        log("video %s: %s, %.1f s to make, %.1f MB" % (name, codec, made["make_s"],
                                                       made["bytes"] / 1e6))
    return out


# ---- qwen-vl-utils' sampling (vision_process.py), for the Python pipeline

def round_by_factor(n, f):
    return round(n / f) * f


def floor_by_factor(n, f):
    return math.floor(n / f) * f


def ceil_by_factor(n, f):
    return math.ceil(n / f) * f


def qwen_vl_utils_smart_resize(height, width, min_pixels, max_pixels, factor=IMAGE_FACTOR):
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def linspace_round(first, last, n):
    """torch.linspace(first, last, n).round() (numpy's float64 where torch is missing: the same
    indices for these videos' short ranges)."""
    try:
        import torch

        return torch.linspace(first, last, n).round().long().tolist()
    except ImportError:
        import numpy as np

        return [int(v) for v in np.rint(np.linspace(first, last, n))]


def qwen_vl_utils_plan(total_frames, video_fps, height, width, fps=FPS):
    """smart_nframes, the frame indices and the frame size, as fetch_video computes them."""
    max_frames = floor_by_factor(min(FPS_MAX_FRAMES, total_frames), FRAME_FACTOR)
    n = total_frames / video_fps * fps
    n = min(min(max(n, ceil_by_factor(FPS_MIN_FRAMES, FRAME_FACTOR)), max_frames), total_frames)
    n = floor_by_factor(n, FRAME_FACTOR)
    max_pixels = max(min(VIDEO_MAX_PIXELS, VIDEO_TOTAL_PIXELS / n * FRAME_FACTOR),
                     int(VIDEO_MIN_PIXELS * 1.05))
    rh, rw = qwen_vl_utils_smart_resize(height, width, VIDEO_MIN_PIXELS, max_pixels)
    return {"indices": linspace_round(0, total_frames - 1, n), "nframes": n,
            "sample_fps": n / max(total_frames, 1e-6) * video_fps,
            "resized_height": rh, "resized_width": rw}


def read_frames_opencv(path, indices):
    """RGB uint8 [T, H, W, 3] of the frames `indices`: a seek (CAP_PROP_POS_FRAMES) and a read
    each, as a reader that decodes only the sampled frames does."""
    import cv2
    import numpy as np

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise RuntimeError("OpenCV cannot open %s" % path)
    frames = []
    try:
        for i in indices:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, frame = cap.read()
            if not ok:
                raise RuntimeError("OpenCV could not read frame %d of %s" % (i, path))
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return np.stack(frames)


def resize_like_qwen_vl_utils(frames, height, width):
    """fetch_video's resize: the uint8 TCHW tensor, torchvision bicubic with antialias, float."""
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    video = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    return TF.resize(video, [height, width], interpolation=InterpolationMode.BICUBIC,
                     antialias=True).float()


def python_pipeline(path, video_processor_of):
    """OpenCV sampling + torchvision resize + transformers' video processor; times in ms."""
    import cv2

    t0 = time.perf_counter()
    cap = cv2.VideoCapture(path)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    video_fps = cap.get(cv2.CAP_PROP_FPS)
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    plan = qwen_vl_utils_plan(total, video_fps, height, width)
    frames = read_frames_opencv(path, plan["indices"])
    t1 = time.perf_counter()
    rh, rw = plan["resized_height"], plan["resized_width"]
    resized = resize_like_qwen_vl_utils(frames, rh, rw)
    t2 = time.perf_counter()
    processor = video_processor_of(rh, rw)
    t3 = time.perf_counter()  # the processor's construction is not timed
    out = processor(videos=[resized], do_sample_frames=False, return_tensors="pt")
    t4 = time.perf_counter()
    return {"decode_ms": (t1 - t0) * 1e3, "resize_ms": (t2 - t1) * 1e3,
            "processor_ms": (t4 - t3) * 1e3, "total_ms": (t4 - t3 + t2 - t0) * 1e3,
            "frames": plan["indices"], "frame_count": total, "video_fps": video_fps,
            "video_grid_thw": out["video_grid_thw"][0].tolist(),
            "pixel_values_shape": list(out["pixel_values_videos"].shape)}


def video_processor_factory():
    """Qwen2VLVideoProcessor with min = max pixels at the frames' size: qwen-vl-utils has resized
    them already, and the processor would resize again to its own bounds otherwise."""
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    return lambda rh, rw: Qwen2VLVideoProcessor(min_pixels=rh * rw, max_pixels=rh * rw)


# ---- qwenvl

def qwenvl_preprocess(binary, video, extra=(), timeout=600):
    """`qwenvl preprocess --video --json`: its report, the wall time and the child's peak RSS."""
    cmd = [binary, "preprocess", "--video", video, "--json"] + list(extra)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        deadline = time.time() + timeout
        while True:  # wait4 gives this child's own rusage, not every child's so far
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                raise RuntimeError("qwenvl preprocess timed out after %d s" % timeout)
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError("qwenvl preprocess failed (%d): %s" % (proc.returncode,
                                                                 stderr.strip()[-800:]))
    report = json.loads(stdout.strip().splitlines()[-1])
    report["wall_ms"] = wall * 1e3
    report["peak_rss_bytes"] = usage.ru_maxrss * 1024
    return report


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


# ---- the parts

def part_preprocess(args, video, errors):
    q = [qwenvl_preprocess(args.qwenvl, video["path"]) for _ in range(args.runs)]
    for r in q:
        log("qwenvl preprocess: total %.0f ms (decode %.0f ms), wall %.0f ms"
            % (r["total_ms"], r["decode_ms"], r["wall_ms"]))
    report = q[0]
    result = {"video": video, "qwenvl_runs": [{k: r[k] for k in ("total_ms", "decode_ms",
                                                                 "wall_ms")} for r in q],
              "qwenvl": {k: median([r[k] for r in q]) for k in ("total_ms", "decode_ms",
                                                                 "wall_ms")}}
    result["qwenvl"].update({k: report[k] for k in ("frames", "video_grid_thw", "tokens",
                                                    "resized_width", "resized_height",
                                                    "frame_count", "video_fps")})
    try:  # the Python side on its own: qwenvl's figures stand when it fails
        import torch

        result["torch_threads"] = torch.get_num_threads()
        make_processor = video_processor_factory()
        py = [python_pipeline(video["path"], make_processor) for _ in range(args.runs)]
        for r in py:
            log("python pipeline: total %.0f ms (decode %.0f, resize %.0f, processor %.0f)"
                % (r["total_ms"], r["decode_ms"], r["resize_ms"], r["processor_ms"]))
        result["python"] = {k: median([r[k] for r in py])
                            for k in ("total_ms", "decode_ms", "resize_ms", "processor_ms")}
        result["python"].update({k: py[0][k] for k in ("frames", "video_grid_thw",
                                                       "frame_count", "video_fps",
                                                       "pixel_values_shape")})
        result["same_frames"] = py[0]["frames"] == report["frames"]
        result["same_grid"] = py[0]["video_grid_thw"] == report["video_grid_thw"]
    except Exception as exc:
        errors.append("preprocess, Python pipeline: %s: %s" % (type(exc).__name__, exc))
        log(errors[-1])
    return result


def part_rss(args, video):
    r = qwenvl_preprocess(args.qwenvl, video["path"], timeout=max(60, int(args.time_left())))
    width, height = video["spec"]["width"], video["spec"]["height"]
    result = {"video": video, "peak_rss_bytes": r["peak_rss_bytes"], "wall_ms": r["wall_ms"],
              "total_ms": r["total_ms"], "decode_ms": r["decode_ms"],
              "sampled_frames": len(r["frames"]), "frame_count": r["frame_count"],
              "video_grid_thw": r["video_grid_thw"], "patches": r["patches"],
              "pixel_values_bytes": r["patches"] * 1176 * 4,
              "all_frames_decoded_bytes": r["frame_count"] * width * height * 3}
    log("qwenvl preprocess of %s: peak RSS %.0f MB, pixel values %.0f MB" % (
        video["path"], result["peak_rss_bytes"] / 1e6, result["pixel_values_bytes"] / 1e6))
    return result


def hf_child(spec):
    """transformers' time to first token for one video, in this (child) process: prints JSON."""
    import importlib.util

    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    t0 = time.perf_counter()
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        spec["model"], dtype=torch.bfloat16, attn_implementation=attn, device_map="cuda").eval()
    processor = AutoProcessor.from_pretrained(spec["model"])
    load_ms = (time.perf_counter() - t0) * 1e3
    messages = [{"role": "user", "content": [{"type": "video"},
                                             {"type": "text", "text": spec["prompt"]}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if isinstance(text, (list, tuple)):
        text = text[0]
    with torch.no_grad():  # warm-up: kernels, allocator
        warm = processor(text=["Hello there."], return_tensors="pt").to("cuda")
        model(**warm, use_cache=True, logits_to_keep=1)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()

    t0 = time.perf_counter()
    frames = read_frames_opencv(spec["video"], spec["frames"])
    resized = resize_like_qwen_vl_utils(frames, spec["resized_height"], spec["resized_width"])
    kwargs = {"text": [text], "videos": [resized], "return_tensors": "pt",
              "do_sample_frames": False}
    try:  # the sampled rate gives second_per_grid_ts; older processors take no fps
        inputs = processor(fps=spec["sample_fps"], **kwargs)
    except (TypeError, ValueError):
        inputs = processor(**kwargs)
    inputs = inputs.to("cuda")
    inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(torch.bfloat16)
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    with torch.no_grad():
        out = model(**inputs, use_cache=True, logits_to_keep=1)
        out.logits[:, -1].argmax(-1).item()
        t2 = time.perf_counter()
        del out
        torch.cuda.synchronize()
        tv = time.perf_counter()
        model.model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
        torch.cuda.synchronize()
        vision_ms = (time.perf_counter() - tv) * 1e3
    import transformers

    print(json.dumps({
        "attn": attn, "torch": torch.__version__, "transformers": transformers.__version__,
        "load_ms": load_ms, "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "video_grid_thw": inputs["video_grid_thw"][0].tolist(),
        "preprocess_ms": (t1 - t0) * 1e3, "forward_ms": (t2 - t1) * 1e3, "vision_ms": vision_ms,
        "ttft_ms": (t2 - t0) * 1e3, "peak_allocated_bytes": torch.cuda.max_memory_allocated()}),
        flush=True)


def run_hf_child(spec, timeout):
    cmd = [sys.executable, os.path.abspath(__file__), "--hf-child", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(proc.stderr[-2000:])
    lines = [l for l in proc.stdout.strip().splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError("transformers child failed (%d): %s" % (proc.returncode,
                                                                  proc.stderr[-1500:]))
    return json.loads(lines[-1])


def part_ttft(args, size, video, errors):
    if args.model_dir:
        model_dir = args.model_dir
    else:
        from tools.build_random_checkpoint import ensure_checkpoint

        model_dir = os.path.join(args.ckpt_root, size)
        ensure_checkpoint(size, model_dir, device="cuda")
    result = {"video": video}
    try:
        runs = [run_qwenvl(args.qwenvl, model_dir, PROMPT, (), device=args.device,
                           max_new_tokens=1,
                           extra=["--video", video["path"]],
                           timeout=max(60, int(args.time_left())))
                for _ in range(args.runs)]
        runs.sort(key=lambda r: r["ttft_ms"])
        best = runs[0]
        result["qwenvl"] = {"ttft_ms": best["ttft_ms"], "ttft_runs_ms": [r["ttft_ms"] for r in runs],
                            "prompt_tokens": best["prompt_tokens"],
                            "video_grid_thw": best["video_grid_thw"][0],
                            "timings": best["timings"], "peak_memory_bytes":
                            best.get("peak_memory_bytes"), "memory_plan": best.get("memory_plan"),
                            "videos": best.get("videos")}
        log("qwenvl %s video TTFT %.0f ms, timings %s" % (size, best["ttft_ms"],
                                                           json.dumps(best["timings"])))
    except Exception as exc:
        errors.append("%s qwenvl ttft: %s" % (size, exc))
        log(errors[-1])
    if "transformers" not in args.engines:
        return result
    if args.time_left() < 60:
        errors.append("%s transformers ttft: skipped (time budget)" % size)
        return result
    try:
        sampled = (result.get("qwenvl", {}).get("videos") or [None])[0]
        if sampled:  # the frames and size qwenvl used
            frames, rh, rw = sampled["frames"], sampled["resized_height"], sampled["resized_width"]
            sample_fps = sampled["sample_fps"]
        else:
            plan = qwen_vl_utils_plan(opencv_frame_count(video["path"]), video["spec"]["fps"],
                                      video["spec"]["height"], video["spec"]["width"])
            frames, rh, rw = plan["indices"], plan["resized_height"], plan["resized_width"]
            sample_fps = plan["sample_fps"]
        result["transformers"] = run_hf_child(
            {"model": model_dir, "video": video["path"], "prompt": PROMPT, "frames": frames,
             "resized_height": rh, "resized_width": rw, "sample_fps": sample_fps},
            timeout=max(60, int(args.time_left())))
        log("transformers %s video TTFT %.0f ms" % (size, result["transformers"]["ttft_ms"]))
    except Exception as exc:
        errors.append("%s transformers ttft: %s" % (size, exc))
        log(errors[-1])
    return result


# ---- the report

def mb(n):
    return n / 1e6 if n is not None else None


def markdown(data, info, args):
    lines = ["# Video input: qwenvl beside OpenCV + transformers", "",
             "- %s, commit %s; %s; %s" % (today(), info.get("commit"), info.get("gpu"),
                                          info.get("cpu")),
             "- sampling at %g fps as qwen-vl-utils samples (its frame indices and sizes)" % FPS,
             ""]
    videos = data.get("videos") or {}
    if videos:
        rows = [[name, "%dx%d" % (v["spec"]["width"], v["spec"]["height"]),
                 v["spec"]["frames"], v["spec"]["fps"], v["codec"], mb(v.get("bytes")),
                 "reused" if v.get("reused") else v.get("make_s")]
                for name, v in videos.items()]
        lines += ["## Test videos (OpenCV VideoWriter)", "",
                  markdown_table(["video", "size", "frames", "fps", "codec", "MB",
                                  "seconds to make"], rows), ""]
    pre = data.get("preprocess")
    if pre:
        q, py = pre.get("qwenvl") or {}, pre.get("python") or {}
        rows = [["qwenvl preprocess --video", q.get("decode_ms"), None, None,
                 q.get("total_ms"), q.get("wall_ms")],
                ["OpenCV + torchvision + Qwen2VLVideoProcessor", py.get("decode_ms"),
                 py.get("resize_ms"), py.get("processor_ms"), py.get("total_ms"), None]]
        lines += ["## Decode + preprocess: %s at %g fps (ms, median of %d)"
                  % (PREPROCESS_VIDEO, FPS, args.runs), "",
                  markdown_table(["pipeline", "decode", "resize", "processor", "total",
                                  "process wall"], rows), "",
                  "- qwenvl: %s frames sampled, grid %s; decode = demux + decode + colour "
                  "conversion (resize and patching in total)" % (
                      len(q.get("frames") or []), q.get("video_grid_thw")),
                  "- Python / qwenvl total: %s; same frame indices: %s, same grid: %s; torch "
                  "threads %s" % (ratio(py.get("total_ms"), q.get("total_ms")),
                                  pre.get("same_frames"), pre.get("same_grid"),
                                  pre.get("torch_threads")), ""]
    rss = data.get("rss")
    if rss:
        rows = [[RSS_VIDEO, rss["frame_count"], rss["sampled_frames"],
                 "x".join(str(v) for v in rss["video_grid_thw"]), mb(rss["peak_rss_bytes"]),
                 mb(rss["pixel_values_bytes"]), mb(rss["all_frames_decoded_bytes"]),
                 rss["total_ms"]]]
        lines += ["## Peak host memory of `qwenvl preprocess --video` (MB)", "",
                  markdown_table(["video", "frames", "sampled", "grid", "peak RSS",
                                  "pixel values (f32)", "every frame decoded (RGB)",
                                  "total ms"], rows), ""]
    ttft = data.get("ttft") or {}
    if ttft:
        rows = []
        for size, r in ttft.items():
            q, h = r.get("qwenvl") or {}, r.get("transformers") or {}
            t = q.get("timings") or {}
            rows.append([size, q.get("prompt_tokens") or h.get("prompt_tokens"),
                         t.get("preprocess_ms"), t.get("vision_ms"), t.get("prefill_ms"),
                         q.get("ttft_ms"), h.get("preprocess_ms"), h.get("vision_ms"),
                         h.get("ttft_ms"), ratio(h.get("ttft_ms"), q.get("ttft_ms"))])
        attn = next((r["transformers"].get("attn") for r in ttft.values()
                     if r.get("transformers")), None)
        lines += ["## Time to first token: %s at %g fps (ms, load excluded)" % (TTFT_VIDEO, FPS),
                  "",
                  markdown_table(["model", "prompt tokens", "qwenvl preprocess", "qwenvl vision",
                                  "qwenvl prefill", "qwenvl TTFT", "transformers preprocess",
                                  "transformers vision (alone)", "transformers TTFT",
                                  "speedup"], rows), "",
                  "- qwenvl: `generate --device %s --video --max-new-tokens 1 --json`, best of "
                  "%d processes; transformers: bf16, %s, OpenCV reading qwenvl's sampled frames, "
                  "torchvision resize, the checkpoint's processor, one forward with "
                  "logits_to_keep=1 (its vision column is a second, separate call)"
                  % (args.device, args.runs, attn or "—"), ""]
    if data.get("errors"):
        lines += ["## Errors and skips", ""] + ["- " + e for e in data["errors"]] + [""]
    lines.append("Total bench time: %.0f s" % data.get("seconds", 0))
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="videos,preprocess,rss,ttft")
    p.add_argument("--models", default="3B,7B")
    p.add_argument("--engines", default="qwenvl,transformers")
    p.add_argument("--qwenvl", default=DEFAULT_QWENVL)
    p.add_argument("--runs", type=int, default=2, help="processes per timed case")
    p.add_argument("--ckpt-root", default="/tmp/qwenvl-bench")
    p.add_argument("--model-dir", help="a checkpoint for ttft instead of the random full-size "
                   "one of --models (to try the script with a tiny model)")
    p.add_argument("--device", default="cuda", help="qwenvl's device for ttft")
    p.add_argument("--videos-dir", default="/tmp/qwenvl-bench/videos")
    p.add_argument("--codecs", default="avc1,mp4v",
                   help="OpenCV fourccs to write the videos with, the first that works")
    p.add_argument("--make-limit-s", type=float, default=60.0,
                   help="a codec projected to take longer for one video gives way to the next")
    p.add_argument("--duration-scale", type=float, default=1.0,
                   help="shorten every video by this factor (to try the script quickly)")
    p.add_argument("--budget-s", type=float, default=540.0,
                   help="stop starting new work after this many seconds")
    p.add_argument("--results-dir", default=os.path.join(REPO, "bench", "results"))
    p.add_argument("--name", help="results file name after the GPU's (default: video[-MODELS])")
    p.add_argument("--hf-child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.parts = [s for s in args.parts.split(",") if s]
    unknown = set(args.parts) - {"videos", "preprocess", "rss", "ttft"}
    if unknown:
        p.error("unknown parts: %s" % ", ".join(sorted(unknown)))
    args.models = [s for s in args.models.split(",") if s]
    args.engines = set(args.engines.split(","))
    args.codecs = [c for c in args.codecs.split(",") if c]
    if any(len(c) != 4 for c in args.codecs):
        p.error("--codecs: fourccs are four characters each")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    if not args.name:
        args.name = "video" + ("-" + "-".join(args.models) if "ttft" in args.parts else "")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.hf_child:
        hf_child(json.loads(args.hf_child))
        return 0
    t_start = time.time()
    args.time_left = lambda: args.budget_s - (time.time() - t_start)
    errors, data = [], {}

    # Every part needs its videos: make (or reuse) those of the parts asked for.
    wanted = {"preprocess": PREPROCESS_VIDEO, "rss": RSS_VIDEO, "ttft": TTFT_VIDEO}
    names = list(VIDEOS) if "videos" in args.parts else []
    names += [wanted[p] for p in args.parts if p in wanted and wanted[p] not in names]
    videos = {}
    try:
        videos = make_videos(names, args.videos_dir, args.duration_scale, args.codecs,
                             args.make_limit_s)
    except Exception as exc:
        errors.append("videos: %s: %s" % (type(exc).__name__, exc))
        log(errors[-1])
    data["videos"] = videos

    def attempt(part, fn, *fn_args):
        if args.time_left() < 20:
            errors.append("%s: skipped (time budget)" % part)
            return None
        try:
            return fn(*fn_args)
        except Exception as exc:
            errors.append("%s: %s: %s" % (part, type(exc).__name__, exc))
            log(errors[-1])
            return None

    if "preprocess" in args.parts and PREPROCESS_VIDEO in videos:
        data["preprocess"] = attempt("preprocess", part_preprocess, args,
                                     videos[PREPROCESS_VIDEO], errors)
    if "rss" in args.parts and RSS_VIDEO in videos:
        data["rss"] = attempt("rss", part_rss, args, videos[RSS_VIDEO])
    if "ttft" in args.parts and TTFT_VIDEO in videos:
        data["ttft"] = {}
        for size in args.models:
            r = attempt("ttft %s" % size, part_ttft, args, size, videos[TTFT_VIDEO], errors)
            if r:
                data["ttft"][size] = r
    data["errors"] = errors
    data["seconds"] = time.time() - t_start
    info = machine_info()
    data["machine"] = info
    text = markdown(data, info, args)
    print(text, flush=True)
    gpu = (info.get("gpu") or "").split(",")[0] or info.get("cpu")
    write_results("%s-%s" % (slug(gpu), args.name), text, data, args.results_dir)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
