"""Small helpers shared by the reference sections: logging, JSON/npy writing, section runner."""

import base64
import json
import os
import sys
import time
import traceback


def log(*parts):
    """Print progress immediately; the lead reads it from one long device run."""
    print("[ref %7.1fs]" % (time.time() - _START), *parts, flush=True)


_START = time.time()


def b64(data):
    return base64.b64encode(data).decode("ascii")


def write_json(path, value, indent=1):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")


def save_npy(path, array, dtype):
    """Write little-endian C-order .npy with an explicit dtype ('<f4', '<i4', '<i8', '|u1')."""
    import numpy as np

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    np.save(path, np.ascontiguousarray(np.asarray(array).astype(np.dtype(dtype))))


def to_list(x):
    """Tensor / ndarray / nested list -> plain Python ints/floats for JSON."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    if hasattr(x, "tolist"):
        return x.tolist()
    return list(x)


class Summary:
    """Collects per-section outcomes so one failing section does not hide the others."""

    def __init__(self):
        self.rows = []

    def run(self, name, fn, *args, **kwargs):
        log("=== section %s: start" % name)
        t0 = time.time()
        try:
            result = fn(*args, **kwargs)
            self.rows.append({"section": name, "ok": True, "seconds": round(time.time() - t0, 2),
                              "detail": result if isinstance(result, (str, dict, list)) else None})
            log("=== section %s: ok (%.1fs)" % (name, time.time() - t0))
            return result
        except BaseException as exc:  # keep going: the next section may still be useful
            if isinstance(exc, KeyboardInterrupt):
                raise
            tb = traceback.format_exc()
            print(tb, file=sys.stderr, flush=True)
            self.rows.append({"section": name, "ok": False, "seconds": round(time.time() - t0, 2),
                              "error": "%s: %s" % (type(exc).__name__, exc), "traceback": tb})
            log("=== section %s: FAILED (%s)" % (name, exc))
            return None

    def print(self):
        print("\n==== make_reference summary ====", flush=True)
        for row in self.rows:
            status = "ok    " if row["ok"] else "FAILED"
            print("%s %-12s %7.1fs %s" % (status, row["section"], row["seconds"],
                                          row.get("error", "")), flush=True)

    def all_ok(self):
        return all(row["ok"] for row in self.rows)
