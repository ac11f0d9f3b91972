#!/usr/bin/env python3
"""Video preprocessing against qwen-vl-utils' rules + torchvision + transformers' video processor.

Two steps: `make` needs qwenvl (FFmpeg's libraries travel with it), `check` needs torch. The GPU
machine has both (tools/device/gpu_session.sh video runs them there):

  python3 tools/device/video_checks.py make --qwenvl .carry/bin/qwenvl --out /tmp/video_dumps
         (runs `qwenvl preprocess --video` on the test videos; writes, per case, the JSON report,
         the sampled frames as decoded and our pixel_values_videos)
  python3 tools/device/video_checks.py check --dumps /tmp/video_dumps

`check` recomputes, for every case, the frame indices with torch.linspace and qwen-vl-utils'
formulas, resizes our decoded frames with torchvision.transforms.functional.resize (BICUBIC,
antialias=True, on the uint8 TCHW tensor, as fetch_video does), runs transformers'
Qwen2VLVideoProcessor on them and compares pixel_values_videos and video_grid_thw with ours
(max |difference| must be at most 1e-5). It also compares torch.linspace(...).round() with
qwenvl's float32 emulation on long ranges. Exit status 1 if anything differs.
"""
import argparse
import json
import math
import os
import subprocess
import sys

# (name, video, extra flags) run by `make`; videos under tests/fixtures/videos.
CASES = [
    ("h264", "h264_64x48_10fps.mp4", []),
    ("h264_fps4", "h264_64x48_10fps.mp4", ["--fps", "4"]),
    ("bframes_range", "h264_bframes_64x48_10fps.mp4",
     ["--nframes", "6", "--video-start", "0.5", "--video-end", "1.5"]),
    ("rotate", "h264_rotate90.mp4", []),
    ("vp9_odd", "vp9_91x53_12fps.webm", []),
    ("mjpeg_small", "mjpeg_81x61_8fps.avi", ["--video-max-pixels", "50176"]),
    ("vfr", "vfr_64x48.mkv", ["--video-total-pixels", "401408"]),
]


def make(args):
    os.makedirs(args.out, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for name, video, flags in CASES:
        path = os.path.join(root, "tests", "fixtures", "videos", video)
        base = os.path.join(args.out, name)
        cmd = [args.qwenvl, "preprocess", "--video", path, "--json", "--out", base + ".pixels.npy",
               "--dump-frames", base + ".frames.npy"] + flags
        report = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                           text=True).stdout)
        report["flags"] = flags
        with open(base + ".json", "w") as f:
            json.dump(report, f)
        print(name, report["video_grid_thw"], report["frames"])


# qwen-vl-utils' formulas (vision_process.py), with torch where it uses torch.
def qwen_vl_utils_indices(torch, report):
    flags = dict(zip(report["flags"][::2], report["flags"][1::2]))
    total, fps = report["frame_count"], report["video_fps"]
    start, end = 0, total - 1
    if "--video-start" in flags or "--video-end" in flags:
        max_duration = total / fps
        if "--video-start" in flags:
            start = math.ceil(max(0.0, min(float(flags["--video-start"]), max_duration)) * fps)
        if "--video-end" in flags:
            end = min(math.floor(max(0.0, min(float(flags["--video-end"]), max_duration)) * fps),
                      total - 1)
    count = end - start + 1
    if "--nframes" in flags:
        n = round(int(flags["--nframes"]) / 2) * 2
    else:
        target = float(flags.get("--fps", 2.0))
        max_frames = math.floor(min(768, count) / 2) * 2
        n = min(min(max(count / fps * target, 4), max_frames), count)
        n = math.floor(n / 2) * 2
    idx = torch.linspace(start, end, n).round().long().tolist()
    return idx, n / max(count, 1e-6) * fps


def check(args):
    import numpy as np
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    failures = 0
    names = sorted(f[:-5] for f in os.listdir(args.dumps) if f.endswith(".json"))
    for name in names:
        base = os.path.join(args.dumps, name)
        report = json.load(open(base + ".json"))
        idx, sample_fps = qwen_vl_utils_indices(torch, report)
        ok_idx = idx == report["frames"] and abs(sample_fps - report["sample_fps"]) < 1e-9
        frames = np.load(base + ".frames.npy")  # [T, H, W, 3] float32 of 0..255
        video = torch.from_numpy(frames.astype(np.uint8)).permute(0, 3, 1, 2).contiguous()
        rh, rw = report["resized_height"], report["resized_width"]
        resized = TF.resize(video, [rh, rw], interpolation=InterpolationMode.BICUBIC,
                            antialias=True).float()
        # min/max pixels that keep the size qwen-vl-utils chose (the processor resizes again
        # otherwise)
        processor = Qwen2VLVideoProcessor(min_pixels=rh * rw, max_pixels=rh * rw)
        out = processor(videos=[resized], do_sample_frames=False, return_tensors="pt")
        theirs = out["pixel_values_videos"].float().numpy()
        ours = np.load(base + ".pixels.npy")
        grid_ok = out["video_grid_thw"][0].tolist() == report["video_grid_thw"]
        diff = np.abs(theirs - ours).max() if theirs.shape == ours.shape else float("inf")
        over = int((np.abs(theirs - ours) > 1e-5).sum()) if theirs.shape == ours.shape else -1
        ok = ok_idx and grid_ok and diff <= 1e-5
        failures += not ok
        print(f"{name:16s} indices {'ok' if ok_idx else 'DIFFER ' + str(idx)}  grid "
              f"{'ok' if grid_ok else 'DIFFERS'}  max|diff| {diff:.3g} ({over} values > 1e-5)"
              f"  {'PASS' if ok else 'FAIL'}")

    # torch.linspace(...).round() against the float32 emulation in video_sampling.cpp, on long
    # ranges where float32 rounding can move an index (the emulation assumes 16-float vectors).
    def emulate(first, last, n, width=16):
        f32 = lambda x: float(np.float32(x))
        start, end = f32(first), f32(last)
        step = f32((end - start) / f32(n - 1))
        half = n // 2
        scalar = lambda i: f32(start + f32(step * i)) if i < half else f32(end - f32(step * (n - i - 1)))
        out, i = [None] * n, 0
        while i + 2 * width <= n:
            for b in (i, i + width):
                base = scalar(b)
                for j in range(width):
                    out[b + j] = f32(base + f32(j * step))
            i += 2 * width
        while i < n:
            out[i] = scalar(i)
            i += 1
        return [int(np.round(np.float32(v))) for v in out]

    capability = torch.backends.cpu.get_cpu_capability()
    width = 16 if "AVX512" in capability else 8
    bad = 0
    for first, last, n in [(0, 17999, 768), (0, 107999, 768), (37, 90036, 702), (0, 5999, 700)]:
        if torch.linspace(first, last, n).round().long().tolist() != emulate(first, last, n, width):
            bad += 1
    print(f"linspace emulation ({capability}, {width}-float vectors): "
          f"{'PASS' if bad == 0 else f'{bad} ranges DIFFER'}")
    failures += bad
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--qwenvl", default="build/qwenvl")
    m.add_argument("--out", default="video_dumps")
    c = sub.add_parser("check")
    c.add_argument("--dumps", default="video_dumps")
    args = parser.parse_args()
    if args.command == "make":
        make(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
