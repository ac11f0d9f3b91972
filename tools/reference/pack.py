"""Section 5: tar+gzip the fixture tree and split it into parts small enough to bring back."""

import glob
import io
import os
import tarfile

from tools.reference.common import log

PART_BYTES = 15 * 1000 * 1000
# Committed with the repository already (the downloaded vocabulary); no need to carry them back.
SKIP = {"tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"}


def tree_bytes(root):
    total = 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def pack(out_dir, pack_dir, name="fixtures.tar.gz"):
    os.makedirs(pack_dir, exist_ok=True)
    for old in glob.glob(os.path.join(pack_dir, name + ".part*")):
        os.remove(old)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for dirpath, dirnames, files in os.walk(out_dir):
            dirnames.sort()
            for f in sorted(files):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, out_dir)
                if rel in SKIP or "__pycache__" in rel:
                    continue
                tar.add(path, arcname=rel, recursive=False)
    data = buf.getvalue()
    parts = []
    for i in range(0, len(data), PART_BYTES):
        part = os.path.join(pack_dir, "%s.part%02d" % (name, i // PART_BYTES))
        with open(part, "wb") as f:
            f.write(data[i:i + PART_BYTES])
        parts.append(os.path.basename(part))
    log("pack: %.1f MB tree -> %.1f MB gz in %d parts under %s" % (
        tree_bytes(out_dir) / 1e6, len(data) / 1e6, len(parts), pack_dir))
    restore = "cat %s/%s.part* | tar -xzf - -C tests/fixtures" % (pack_dir, name)
    log("pack: restore with: " + restore)
    return {"parts": parts, "gz_bytes": len(data), "tree_bytes": tree_bytes(out_dir),
            "restore": restore}
