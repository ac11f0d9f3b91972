"""Input images for the vision fixtures (tests/fixtures/images/) and what transformers makes of them.

Used by tools/make_reference.py on the GPU machine (numpy, Pillow, scikit-image, transformers 5.17;
no GPU needed):

- build_images(out_dir) writes the inputs and returns the cases [{"file", "min_pixels",
  "max_pixels"}] (None = the Qwen2.5-VL checkpoint's preprocessor_config.json values, 3136 and
  12845056). The same bytes on every run: fixed seeds, fixed encoder settings.
- expected_for(case, image_path) loads one input the way qwenvl promises to (Pillow open, EXIF
  transpose, alpha composited onto white, else convert("RGB")), runs Qwen2VLImageProcessorPil and
  returns {"resized_hw", "grid_thw", "rgb", "pixel_values"} or {"error": message}. It also redoes
  the rescale/normalize/patchify in numpy from the resized RGB it returns and asserts that equals
  the processor's pixel_values, so the stored rgb and pixel_values describe the same image.

The inputs cover each decoder path qwenvl has (JPEG baseline/progressive/4:2:0/4:2:2/grey/CMYK,
PNG 1/8/16-bit grey, RGB, RGBA, palette + tRNS, grey + alpha, WebP lossy/lossless/alpha, BMP
24/32-bit, 8-bit palette, top-down), EXIF orientations in JPEG, PNG and WebP, and the smart_resize
corners: tiny images that are scaled up to min_pixels, banker's rounding (x.5 multiples of 28),
no-op resizes, thin images (and one past the 200:1 aspect limit), a 20-megapixel photo that hits
max_pixels, and min/max_pixels overrides.

Run directly to build into a folder and print every case's result:
    python3 tools/reference/image_cases.py /tmp/images
"""

import os
import struct
import sys
import zlib

# What "None" means in a case: Qwen2.5-VL's preprocessor_config.json (the class defaults of
# Qwen2VLImageProcessorPil differ: longest_edge 28*28*1280).
DEFAULT_MIN_PIXELS = 56 * 56  # 3136
DEFAULT_MAX_PIXELS = 14 * 14 * 4 * 16384  # 12845056

SEED = 20260526
JPEG_QUALITY = 90


# ----------------------------------------------------------------------------- writers

def _png_chunk(tag, data):
    body = tag + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png16(path, array):
    """16-bit PNG from a uint16 H x W x C array (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).

    Pillow cannot write 16-bit RGB(A) PNGs, so they are written here: filter 0 on every row,
    big-endian samples, as the PNG spec lays them out.
    """
    import numpy as np

    array = np.asarray(array)
    assert array.dtype == np.uint16 and array.ndim == 3, (array.dtype, array.shape)
    height, width, channels = array.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = array.astype(">u2")
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(height))
    data = (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(raw, 9))
            + _png_chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


def write_bmp24_top_down(path, rgb):
    """24-bit BMP with a negative height (rows stored top to bottom), which Pillow cannot write."""
    import numpy as np

    rgb = np.asarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    stride = (width * 3 + 3) // 4 * 4
    pixels = bytearray()
    for y in range(height):
        row = rgb[y, :, ::-1].tobytes()  # BGR
        pixels += row + b"\x00" * (stride - len(row))
    info = struct.pack("<IiiHHIIiiII", 40, width, -height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    header = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    with open(path, "wb") as f:
        f.write(header + info + bytes(pixels))


def _exif_bytes(orientation):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    return exif.tobytes()  # b"Exif\0\0" + little-endian TIFF


# ----------------------------------------------------------------------------- pixels

def _synthetic_rgb(height, width, seed, noise=6.0):
    """A smooth colour field plus Gaussian noise: compresses like a photo, exercises every filter tap."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    out = np.empty((height, width, 3), dtype=np.uint8)
    fields = (
        128 + 100 * np.sin(7.0 * x + 3.0 * y),
        128 + 100 * np.cos(5.0 * x * y + 2.0 * y),
        255 * (0.5 * x + 0.5 * y),
    )
    for c, field in enumerate(fields):
        noisy = field + rng.normal(0.0, noise, (height, width)).astype(np.float32)
        out[:, :, c] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out


def _radial_alpha(height, width):
    """0 at the centre rising to 255 at the corners: every alpha level, fully clear and opaque."""
    import numpy as np

    y = (np.arange(height, dtype=np.float64)[:, None] + 0.5) / height - 0.5
    x = (np.arange(width, dtype=np.float64)[None, :] + 0.5) / width - 0.5
    r = np.sqrt(x * x + y * y) / np.sqrt(0.5)
    return np.clip(np.rint(r * 255.0), 0, 255).astype(np.uint8)


def _random_rgb(height, width, seed):
    import numpy as np

    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- the cases

def build_images(out_dir):
    """Writes every input image into out_dir; returns the cases in a fixed order."""
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    os.makedirs(out_dir, exist_ok=True)

    def path(name):
        return os.path.join(out_dir, name)

    chelsea = np.ascontiguousarray(skdata.chelsea())  # 300 x 451 RGB
    astronaut = np.ascontiguousarray(skdata.astronaut())  # 512 x 512 RGB
    coffee = np.ascontiguousarray(skdata.coffee())  # 400 x 600 RGB
    chelsea_im = Image.fromarray(chelsea)
    astronaut_im = Image.fromarray(astronaut)
    coffee_im = Image.fromarray(coffee)
    # Lossless files are as large as their pixels (BMP) or nearly (noisy 16-bit PNG), and the
    # repository carries them: they hold smaller versions of the photos, since each decoder path
    # needs its format, not megapixels. Every one is still resized (none is a multiple of 28).
    def smaller(im, size):
        return im.resize(size, Image.Resampling.LANCZOS)

    coffee_small = smaller(coffee_im, (200, 133))  # 600 x 400 photos keep their 3:2
    chelsea_small = smaller(chelsea_im, (225, 150))
    astronaut_small = smaller(astronaut_im, (256, 256))
    coffee_tiny = np.asarray(smaller(coffee_im, (120, 80)))
    chelsea_tiny = np.asarray(smaller(chelsea_im, (120, 80)))

    # JPEG: the photos at q90 (4:2:0, Pillow's default), progressive, 4:2:2, grey, CMYK.
    chelsea_im.save(path("chelsea.jpg"), "JPEG", quality=JPEG_QUALITY)
    astronaut_im.save(path("astronaut.jpg"), "JPEG", quality=JPEG_QUALITY)
    coffee_im.save(path("coffee.jpg"), "JPEG", quality=JPEG_QUALITY)
    astronaut_im.save(path("astronaut_progressive.jpg"), "JPEG", quality=JPEG_QUALITY,
                      progressive=True)
    chelsea_im.save(path("chelsea_422.jpg"), "JPEG", quality=JPEG_QUALITY, subsampling=1)
    coffee_im.convert("L").save(path("coffee_grey.jpg"), "JPEG", quality=JPEG_QUALITY)
    coffee_im.convert("CMYK").save(path("coffee_cmyk.jpg"), "JPEG", quality=JPEG_QUALITY)
    astronaut_im.resize((333, 517), Image.Resampling.LANCZOS).save(
        path("odd_333x517.jpg"), "JPEG", quality=JPEG_QUALITY)
    # EXIF orientation on a non-square photo so a missed rotation changes the size.
    for orientation in (3, 6, 8):
        coffee_im.save(path("exif%d.jpg" % orientation), "JPEG", quality=JPEG_QUALITY,
                       exif=_exif_bytes(orientation))
    # 20 MP: smart_resize's max_pixels branch with the defaults.
    # Low noise keeps the committed file small (a few MB).
    Image.fromarray(_synthetic_rgb(4000, 5000, SEED, noise=2.0)).save(
        path("large_5000x4000.jpg"), "JPEG", quality=JPEG_QUALITY)

    # PNG: RGB, RGBA, palette + tRNS (per-index alphas and one transparent index), grey 1/8/16-bit,
    # grey + alpha, RGB(A) 16-bit, eXIf orientation.
    coffee_small.save(path("coffee.png"), "PNG")
    chelsea_small_rgb = np.asarray(chelsea_small)
    rgba = np.dstack([chelsea_small_rgb, _radial_alpha(*chelsea_small_rgb.shape[:2])])
    Image.fromarray(rgba).save(path("rgba_gradient.png"), "PNG")
    palette_im = coffee_small.quantize(colors=64)
    palette_im.save(path("palette_trns.png"), "PNG",
                    transparency=bytes((i * 37) % 256 for i in range(64)))
    palette_im.save(path("palette_trns_index.png"), "PNG", transparency=5)
    astronaut_small.convert("L").save(path("grey8.png"), "PNG")
    Image.fromarray(astronaut[:, :, 0] > 128).save(path("bilevel.png"), "PNG")  # mode "1"
    la = np.dstack([np.asarray(astronaut_small.convert("L")), _radial_alpha(256, 256)[::-1]])
    Image.fromarray(la).save(path("grey_alpha.png"), "PNG")
    rng = np.random.default_rng(SEED + 1)
    # Values up to ~600: Pillow clips 16-bit grey to 255 on convert("RGB"), so both sides show.
    ramp = np.linspace(0, 600, 320)[None, :] + np.linspace(0, 40, 240)[:, None]
    grey16 = np.clip(ramp + rng.normal(0, 8, (240, 320)), 0, 65535).astype(np.uint16)
    write_png16(path("grey16.png"), grey16[:, :, None])
    rgb16 = ((coffee_tiny.astype(np.uint16) * 257)
             ^ rng.integers(0, 256, coffee_tiny.shape, dtype=np.uint16))
    write_png16(path("rgb16.png"), rgb16)
    # Random low bytes under the image: Pillow keeps only the high byte of each sample.
    low = rng.integers(0, 256, chelsea_tiny.shape[:2] + (4,), dtype=np.uint16)
    rgba16 = (np.dstack([chelsea_tiny, _radial_alpha(*chelsea_tiny.shape[:2])]).astype(np.uint16)
              * 256 + low)
    write_png16(path("rgba16.png"), rgba16)
    coffee_small.save(path("exif8.png"), "PNG", exif=_exif_bytes(8))

    # WebP: lossy, lossy with alpha, lossless with alpha, EXIF orientation.
    chelsea_im.save(path("webp_lossy.webp"), "WEBP", quality=80)
    Image.fromarray(rgba).save(path("webp_lossy_alpha.webp"), "WEBP", quality=80)
    Image.fromarray(rgba).save(path("webp_lossless_alpha.webp"), "WEBP", lossless=True)
    coffee_im.save(path("webp_exif6.webp"), "WEBP", quality=80, exif=_exif_bytes(6))

    # BMP: 24-bit bottom-up, 24-bit top-down, 32-bit (alpha byte ignored by Pillow), 8-bit palette.
    Image.fromarray(chelsea_tiny).save(path("bmp24.bmp"), "BMP")
    write_bmp24_top_down(path("bmp24_topdown.bmp"), coffee[:101, :203])
    Image.fromarray(np.dstack([chelsea_tiny, _radial_alpha(*chelsea_tiny.shape[:2])])).save(
        path("bmp32.bmp"), "BMP")
    coffee_small.quantize(colors=200).save(path("bmp8.bmp"), "BMP")

    # Sizes: tiny (scaled up to min_pixels), banker's rounding, already a multiple of 28 (no
    # resample at all), thin (Pillow resizes images taller than 100:1 vertically first), too thin.
    Image.fromarray(_random_rgb(7, 5, SEED + 2)).save(path("tiny_5x7.png"), "PNG")
    Image.fromarray(_random_rgb(27, 27, SEED + 3)).save(path("tiny_27x27.png"), "PNG")
    Image.fromarray(_random_rgb(1, 1, SEED + 4)).save(path("tiny_1x1.png"), "PNG")
    # 42 / 28 = 1.5 and 70 / 28 = 2.5: Python's round() gives 2 and 2 (half to even).
    Image.fromarray(_synthetic_rgb(42, 70, SEED + 5)).save(path("banker_70x42.png"), "PNG")
    Image.fromarray(_synthetic_rgb(224, 280, SEED + 6)).save(
        path("identity_280x224.png"), "PNG")
    Image.fromarray(_synthetic_rgb(3000, 20, SEED + 7)).save(path("tall_20x3000.png"), "PNG")
    Image.fromarray(_synthetic_rgb(20, 3000, SEED + 8)).save(path("wide_3000x20.png"), "PNG")
    Image.fromarray(_synthetic_rgb(3000, 10, SEED + 9)).save(
        path("error_10x3000.png"), "PNG")

    defaults = [
        "chelsea.jpg", "astronaut.jpg", "coffee.jpg", "astronaut_progressive.jpg",
        "chelsea_422.jpg", "coffee_grey.jpg", "coffee_cmyk.jpg", "odd_333x517.jpg",
        "exif3.jpg", "exif6.jpg", "exif8.jpg", "large_5000x4000.jpg",
        "coffee.png", "rgba_gradient.png", "palette_trns.png", "palette_trns_index.png",
        "grey8.png", "bilevel.png", "grey_alpha.png", "grey16.png", "rgb16.png", "rgba16.png",
        "exif8.png",
        "webp_lossy.webp", "webp_lossy_alpha.webp", "webp_lossless_alpha.webp", "webp_exif6.webp",
        "bmp24.bmp", "bmp24_topdown.bmp", "bmp32.bmp", "bmp8.bmp",
        "tiny_5x7.png", "tiny_27x27.png", "tiny_1x1.png", "banker_70x42.png",
        "identity_280x224.png", "tall_20x3000.png", "wide_3000x20.png", "error_10x3000.png",
    ]
    cases = [{"file": name, "min_pixels": None, "max_pixels": None} for name in defaults]
    overrides = [
        ("chelsea.jpg", None, 200704),  # 256 tokens' worth
        ("coffee.jpg", 65536, 200704),
        ("astronaut.jpg", None, 50176),  # 28*28*64: a heavy downscale (support scaling)
        ("tiny_27x27.png", 65536, None),
        ("tiny_5x7.png", 65536, 65536),
        ("large_5000x4000.jpg", None, 1003520),  # the processor class's own default
        ("tall_20x3000.png", None, 200704),
        ("exif6.jpg", 65536, 200704),
        ("rgba_gradient.png", 200704, 1003520),  # upscale of an alpha image
    ]
    for name, min_pixels, max_pixels in overrides:
        cases.append({"file": name, "min_pixels": min_pixels, "max_pixels": max_pixels})
    for case in cases:
        assert os.path.exists(path(case["file"])), case["file"]
    return cases


# ----------------------------------------------------------------------------- the reference

def _has_alpha(im):
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def load_rgb(image_path):
    """The RGB image qwenvl promises to decode: Pillow open, ImageOps.exif_transpose, then alpha
    (any alpha channel or tRNS transparency) composited onto white as qwen-vl-utils' to_rgb does
    for RGBA (white.paste(img, mask=alpha)), else convert("RGB")."""
    from PIL import Image, ImageOps

    with Image.open(image_path) as opened:
        opened.load()
        im = ImageOps.exif_transpose(opened)
    if _has_alpha(im):
        rgba = im.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.split()[3])
        return white
    return im.convert("RGB")


def _patchify(rgb, rescale_factor, image_mean, image_std, patch, merge, temporal):
    """Rescale, normalize and flatten exactly as transformers' numpy code does it: rescale in
    float64 then cast to float32; (x - mean) / std in float32; frame repeated to `temporal`."""
    import numpy as np

    x = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)  # C, H, W
    x = (x.astype(np.float64) * rescale_factor).astype(np.float32)
    mean = np.array(image_mean, dtype=np.float32)
    std = np.array(image_std, dtype=np.float32)
    x = ((x.T - mean) / std).T
    channels, height, width = x.shape
    grid_h, grid_w = height // patch, width // patch
    frames = np.repeat(x[None], temporal, axis=0)[None]  # 1, T, C, H, W
    frames = frames.reshape(1, 1, temporal, channels, grid_h // merge, merge, patch,
                            grid_w // merge, merge, patch)
    frames = frames.transpose(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    return frames.reshape(grid_h * grid_w, channels * temporal * patch * patch)


def expected_for(case, image_path):
    import numpy as np
    from PIL import Image
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    min_pixels = case["min_pixels"] if case["min_pixels"] is not None else DEFAULT_MIN_PIXELS
    max_pixels = case["max_pixels"] if case["max_pixels"] is not None else DEFAULT_MAX_PIXELS
    # A fresh size dict: passing min_pixels= to the constructor would edit the class's shared one.
    processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": int(min_pixels), "longest_edge": int(max_pixels)})
    patch, merge = processor.patch_size, processor.merge_size
    temporal = processor.temporal_patch_size

    image = load_rgb(image_path)
    width, height = image.size
    try:
        out = processor(images=image, return_tensors="np")
    except ValueError as exc:  # smart_resize's refusals (aspect ratio over 200)
        return {"error": str(exc)}
    pixel_values = np.asarray(out["pixel_values"])
    grid = [int(v) for v in np.asarray(out["image_grid_thw"]).reshape(-1)]
    assert pixel_values.dtype == np.float32, pixel_values.dtype

    resized_h, resized_w = smart_resize(height, width, factor=patch * merge,
                                        min_pixels=min_pixels, max_pixels=max_pixels)
    assert grid == [1, resized_h // patch, resized_w // patch], (grid, resized_h, resized_w)
    # What the processor resizes: np.array(image) -> to_pil_image -> Image.resize(BICUBIC).
    resized = image.resize((resized_w, resized_h), resample=Image.Resampling.BICUBIC)
    rgb = np.asarray(resized, dtype=np.uint8).copy()
    assert rgb.shape == (resized_h, resized_w, 3), rgb.shape

    rescale_factor = getattr(processor, "rescale_factor", 1 / 255)
    ours = _patchify(rgb, rescale_factor, processor.image_mean, processor.image_std, patch, merge,
                     temporal)
    assert ours.shape == pixel_values.shape, (ours.shape, pixel_values.shape)
    diff = float(np.max(np.abs(ours.astype(np.float64) - pixel_values.astype(np.float64))))
    assert diff < 1e-6, "%s: numpy patchify differs from the processor by %g" % (case, diff)
    return {
        "resized_hw": [int(resized_h), int(resized_w)],
        "grid_thw": grid,
        "rgb": rgb,
        "pixel_values": pixel_values,
    }


if __name__ == "__main__":
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "/tmp/qwenvl_images"
    for case in build_images(out_dir):
        result = expected_for(case, os.path.join(out_dir, case["file"]))
        if "error" in result:
            print(case, "-> error:", result["error"])
        else:
            print(case, "->", result["resized_hw"], result["grid_thw"],
                  result["pixel_values"].shape)
