#!/usr/bin/env python3
"""Writes a stand-in for a shared library: the same soname, version nodes and exported symbols,
no code behind them (functions return 0, objects are zeroed bytes) and no libraries of its own.

    python3 tools/device/stub_library.py REAL_LIBRARY OUT_DIR

FFmpeg's libraries from Debian link ~100 codec, network and graphics libraries that qwenvl never
reaches (encoders, protocols, hardware decoders); carried whole they exceed the device call's size
limit. The dynamic loader only needs each of them to exist with the symbols and versions that
libavcodec and libavformat bind, so tools/device/pack_runtime.sh swaps them for these stubs.
libavformat's format probe calls into some of them (libgme, libopenmpt) for every file; their 0
(or, where the caller reads a string, "") means "not this format". Stubs are for the GPU machine's test runs only, never shipped.
"""
import os
import re
import subprocess
import sys
import tempfile

SYMBOL = re.compile(r"^[0-9a-f]+\s+(?P<flags>.{7})\s+(?P<section>\S+)\s+(?P<size>[0-9a-f]+)\s+"
                    r"(?P<version>\(?[^\s)]*\)?)\s+(?P<name>\S+)$")


# Functions whose callers read the result as a string: they get "" where the others get 0.
RETURNS_EMPTY_STRING = {"gme_identify_header"}


def exported_symbols(path):
    """(name, version or None, default version?, is_function, size) of each defined symbol."""
    out = subprocess.run(["objdump", "-T", path], check=True, capture_output=True,
                         text=True).stdout
    symbols = []
    for line in out.splitlines():
        m = SYMBOL.match(line.strip())
        if not m or m["section"] == "*UND*":
            continue
        version = m["version"]
        hidden = version.startswith("(")
        version = version.strip("()")
        if version in ("Base", ""):
            version = None
        if version is not None and m["name"] == version:
            continue  # the version node's own marker symbol
        is_function = "F" in m["flags"]
        symbols.append((m["name"], version, not hidden, is_function, int(m["size"], 16)))
    return symbols


def soname(path):
    out = subprocess.run(["readelf", "-d", path], check=True, capture_output=True,
                         text=True).stdout
    m = re.search(r"\(SONAME\)\s+Library soname: \[(.+)\]", out)
    return m[1] if m else os.path.basename(path)


def main():
    real, out_dir = sys.argv[1], sys.argv[2]
    symbols = exported_symbols(real)
    name = soname(real)
    source, versions = [], set()
    for i, (symbol, version, default, is_function, size) in enumerate(symbols):
        internal = symbol if version is None else "stub_%d" % i
        if is_function:
            result = '(long)""' if symbol in RETURNS_EMPTY_STRING else "0"
            source.append("long %s(void) { return %s; }" % (internal, result))
        else:
            source.append("char %s[%d];" % (internal, max(size, 1)))
        if version is not None:
            versions.add(version)
            source.append('__asm__(".symver %s, %s%s%s");'
                          % (internal, symbol, "@@" if default else "@", version))
    with tempfile.TemporaryDirectory() as tmp:
        c_file = os.path.join(tmp, "stub.c")
        script = os.path.join(tmp, "versions.map")
        with open(c_file, "w") as f:
            f.write("\n".join(source) + "\n")
        with open(script, "w") as f:
            f.write("".join("%s { };\n" % v for v in sorted(versions)))
        command = ["gcc", "-shared", "-fPIC", "-O0", "-w", "-o", os.path.join(out_dir, name),
                   "-Wl,-soname," + name, c_file]
        if versions:
            command.append("-Wl,--version-script=" + script)
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
