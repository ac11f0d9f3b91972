"""Section 3: image preprocessing fixtures (inputs, decoded RGB, pixel_values) and a processor bench.

The inputs and their expected outcome come from tools/reference/image_cases.py (vision helper):
`build_images(images_dir)` writes the input files and returns the cases; `expected_for(...)` says
what transformers makes of each. Anything `expected_for` leaves out is completed here from
transformers' PIL image processor, so the fixture always has the FIXTURES.md layout.
"""

import inspect
import io
import os
import statistics
import time

from tools.reference.common import log, save_npy, to_list, write_json
from tools.reference.processor import default_image_processor, pil_image_processor

# Size budget (the whole repository travels to the GPU machine, at most 64 MiB): the resized
# RGB is stored as a hash of its bytes (the test compares it exactly, so a hash loses nothing but
# the position of a first difference), and pixel_values are kept whole only for small images;
# elsewhere evenly spaced rows (first and last included) are kept and listed in `rows`. The hash
# pins the resize, and the rows pin rescale/normalize/patch order.
MAX_FULL_ROWS = 16
SAMPLED_ROWS = 4
DEFAULT_MIN_PIXELS = 3136
DEFAULT_MAX_PIXELS = 12845056


def unpatchify(pixel_values, grid_thw, patch=14, merge=2, temporal=2, channels=3):
    """Invert the processor's patch layout: rows (t, h/m, w/m, m, m) x cols (c, t, p, p) -> HWC."""
    import numpy as np

    gt, gh, gw = (int(v) for v in grid_thw)
    x = np.asarray(pixel_values).reshape(gt, gh // merge, gw // merge, merge, merge, channels,
                                         temporal, patch, patch)
    x = x[0, :, :, :, :, :, 0]                      # (hb, wb, mh, mw, c, ph, pw)
    x = x.transpose(4, 0, 2, 5, 1, 3, 6)            # (c, hb, mh, ph, wb, mw, pw)
    x = x.reshape(channels, gh * patch, gw * patch)
    return x.transpose(1, 2, 0)


def load_like_transformers(path):
    """transformers.image_utils.load_image: PIL open + EXIF transpose (RGB conversion is later)."""
    from transformers.image_utils import load_image

    return load_image(path)


def transformers_expectation(path, min_pixels, max_pixels):
    """What transformers' PIL processor makes of one image file: rgb uint8, pixel_values, grid."""
    import numpy as np

    image = load_like_transformers(path)
    proc = pil_image_processor(min_pixels, max_pixels)
    out = proc(images=[image], return_tensors="np")
    pixel_values = np.asarray(out["pixel_values"], dtype=np.float32)
    grid = [int(v) for v in np.asarray(out["image_grid_thw"])[0]]
    raw = proc(images=[image], do_rescale=False, do_normalize=False, return_tensors="np")
    rgb = unpatchify(np.asarray(raw["pixel_values"]), grid)
    rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return {"rgb": rgb, "pixel_values": pixel_values, "grid_thw": grid,
            "resized_hw": [grid[1] * 14, grid[2] * 14]}


def fnv1a64(data):
    """FNV-1a, 64-bit, over bytes: the hash tests/vision/fixture_images_test.cpp computes."""
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def rgb_hash(rgb):
    """fnv1a64 of the HWC uint8 bytes in row-major order, as 16 lowercase hex digits (byte by
    byte in Python: ~5 s for the 12.8 MP image, a few ms for the others)."""
    import numpy as np

    return "%016x" % fnv1a64(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())


def _or_default(value, default):
    return int(default if value is None else value)


def _case_fields(case):
    """Accept a dict, a (file, min, max) tuple or a bare file name from build_images; None for
    min/max pixels means the checkpoint's preprocessor_config.json value."""
    if isinstance(case, dict):
        return (case.get("file") or case.get("name") or case.get("path"),
                _or_default(case.get("min_pixels"), DEFAULT_MIN_PIXELS),
                _or_default(case.get("max_pixels"), DEFAULT_MAX_PIXELS), case)
    if isinstance(case, (tuple, list)):
        file = case[0]
        min_px = _or_default(case[1] if len(case) > 1 else None, DEFAULT_MIN_PIXELS)
        max_px = _or_default(case[2] if len(case) > 2 else None, DEFAULT_MAX_PIXELS)
        return file, min_px, max_px, {}
    return str(case), DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS, {}


def _call_expected_for(expected_for, case, path, min_px, max_px):
    """image_cases.expected_for(case, image_path); older shapes of the call are accepted too."""
    params = list(inspect.signature(expected_for).parameters)
    if params and params[0] == "case":
        return expected_for(case, path) if len(params) > 1 else expected_for(case)
    kwargs = {}
    if "min_pixels" in params:
        kwargs["min_pixels"] = min_px
    if "max_pixels" in params:
        kwargs["max_pixels"] = max_px
    if kwargs:
        return expected_for(path, **kwargs)
    return expected_for(path, min_px, max_px)


def _as_uint8_rgb(rgb):
    import numpy as np

    if hasattr(rgb, "convert"):  # PIL image
        rgb = np.asarray(rgb.convert("RGB"))
    return np.asarray(rgb).astype(np.uint8)


def _stem(file, min_px, max_px, seen):
    base = os.path.splitext(os.path.basename(file))[0]
    stem = base
    if stem in seen:
        stem = "%s_%d_%d" % (base, min_px, max_px)
    seen.add(stem)
    return stem


def write_image_fixtures(out_dir):
    import numpy as np

    from tools.reference.image_cases import build_images, expected_for

    images_dir = os.path.join(out_dir, "images")
    os.makedirs(os.path.join(images_dir, "pixel_values"), exist_ok=True)
    cases = build_images(images_dir)
    entries = []
    seen = set()
    failures = []
    for case in cases:
        file, min_px, max_px, raw_case = _case_fields(case)
        try:
            path = file if os.path.isabs(file) else os.path.join(images_dir, file)
            file = os.path.relpath(path, images_dir)
            entry = {"file": file, "min_pixels": int(min_px), "max_pixels": int(max_px)}
            got = _call_expected_for(expected_for, case, path, min_px, max_px)
            got = dict(got) if got is not None else {}
            if got.get("error"):
                entry["error"] = str(got["error"])
                # Check transformers really refuses it; a silent success is worth a warning.
                try:
                    transformers_expectation(path, min_px, max_px)
                    log("images: WARNING %s is expected to be refused but transformers accepts it"
                        % file)
                except Exception as exc:
                    entry.setdefault("transformers_error", "%s: %s" % (type(exc).__name__, exc))
                entries.append(entry)
                continue
            if "rgb" not in got or "pixel_values" not in got or "grid_thw" not in got:
                filled = transformers_expectation(path, min_px, max_px)
                for key, value in filled.items():
                    got.setdefault(key, value)
            grid = [int(v) for v in to_list(got["grid_thw"])]
            rgb = _as_uint8_rgb(got["rgb"])
            pixel_values = np.asarray(got["pixel_values"], dtype=np.float32)
            resized_hw = [int(v) for v in to_list(got.get("resized_hw", rgb.shape[:2]))]
            stem = _stem(file, int(min_px), int(max_px), seen)
            if list(rgb.shape) != resized_hw + [3]:
                raise RuntimeError("%s: resized RGB %s, resized_hw %s" % (file, rgb.shape,
                                                                         resized_hw))
            rows = None
            if pixel_values.shape[0] > MAX_FULL_ROWS:
                rows = sorted(set(int(r) for r in np.linspace(
                    0, pixel_values.shape[0] - 1, SAMPLED_ROWS).round()))
                pixel_values = pixel_values[rows]
            npy = "pixel_values/%s.npy" % stem
            save_npy(os.path.join(images_dir, npy), pixel_values, "<f4")
            entry.update({"resized_hw": resized_hw, "grid_thw": grid, "rgb_fnv1a64": rgb_hash(rgb),
                          "pixel_values_npy": npy, "rows": rows})
            for key in ("note", "description"):
                if isinstance(raw_case, dict) and key in raw_case:
                    entry[key] = raw_case[key]
            entries.append(entry)
            log("images: %-36s grid %s rows %d" % (file, grid, pixel_values.shape[0]))
        except Exception as exc:
            failures.append("%s: %s" % (file, exc))
            log("images: FAILED %s: %s" % (file, exc))
    write_json(os.path.join(images_dir, "expected.json"), entries)
    if failures:
        raise RuntimeError("%d image cases failed: %s" % (len(failures), "; ".join(failures)))
    return {"images": len(entries)}


def make_12mp_jpeg(path):
    """4000x3000 JPEG (quality 90): skimage astronaut upscaled plus seeded noise."""
    import numpy as np
    from PIL import Image
    from skimage import data

    base = Image.fromarray(data.astronaut()).resize((4000, 3000), Image.BICUBIC)
    rng = np.random.default_rng(7)
    arr = np.asarray(base).astype(np.int16) + rng.integers(-12, 13, size=(3000, 4000, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def bench_image_processors(work_dir, runs=5):
    """Median time of decode (PIL open + RGB) + preprocess for a 12 MP JPEG, per processor."""
    from PIL import Image

    os.makedirs(work_dir, exist_ok=True)
    path = make_12mp_jpeg(os.path.join(work_dir, "bench_12mp.jpg"))
    with open(path, "rb") as f:
        jpeg = f.read()
    result = {"image": "4000x3000 JPEG q90 (astronaut upscaled + noise)", "runs": runs,
              "min_pixels": DEFAULT_MIN_PIXELS, "max_pixels": DEFAULT_MAX_PIXELS}
    makers = [("pil", pil_image_processor), ("default", default_image_processor)]
    for name, make in makers:
        try:
            proc = make(DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS)
            times = []
            grid = None
            for _ in range(runs):
                t0 = time.perf_counter()
                image = Image.open(io.BytesIO(jpeg)).convert("RGB")
                out = proc(images=[image], return_tensors="pt")
                times.append(time.perf_counter() - t0)
                grid = to_list(out["image_grid_thw"])
            result[name] = {"class": type(proc).__name__, "median_ms": statistics.median(times) * 1e3,
                            "all_ms": [t * 1e3 for t in times], "grid_thw": grid}
            log("image bench: %s (%s) median %.1f ms" % (name, type(proc).__name__,
                                                         statistics.median(times) * 1e3))
        except Exception as exc:
            result[name] = {"error": "%s: %s" % (type(exc).__name__, exc)}
            log("image bench: %s failed: %s" % (name, exc))
    try:
        os.remove(path)
    except OSError:
        pass
    return result
