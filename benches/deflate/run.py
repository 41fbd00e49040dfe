#!/usr/bin/env python3
"""flate2's deflate backends on xps's own uses of it, side by side.

    python3 benches/deflate/run.py

Builds benches/deflate once per backend (miniz_oxide, flate2's default
pure-Rust one; zlib-rs, pure Rust; zlib, the C library through libz-sys:
the system's when its headers are installed, else a bundled copy) and
runs each at levels 1 and 5 (LEVELS) on the text the gzip benchmark
serves: a 100 KiB file compressed whole (the compressed cache), and a
16 MiB one compressed 64 KiB at a time (a file compressed as it is sent)
and 16 KiB at a time with a sync flush after each (a proxied body).
Prints input MiB/s, compressed size and the bytes one compressor holds,
as a table. Bounded: each figure is DURATION (default 2) seconds of rounds.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gzip"))
from run import text  # noqa: E402  the gzip benchmark's text

DURATION = os.environ.get("DURATION", "2")
LEVELS = [int(x) for x in os.environ.get("LEVELS", "1,5").split(",")]
BACKENDS = ["miniz", "zlib-rs", "zlib"]


def build(feature):
    subprocess.run(["cargo", "build", "--release", "--quiet", "--features", feature],
                   cwd=HERE, check=True, timeout=900)
    exe = os.path.join(HERE, "target", "release", "xps-deflate-bench")
    copy = os.path.join(HERE, "target", f"bench-{feature}")
    os.replace(exe, copy)
    return copy


def main():
    tmp = tempfile.mkdtemp(prefix="xps-deflate-")
    small, large = os.path.join(tmp, "100k.txt"), os.path.join(tmp, "16m.txt")
    with open(small, "w") as f:
        f.write(text(100 << 10))
    with open(large, "w") as f:
        f.write(text(16 << 20))
    rows = []
    for feature in BACKENDS:
        exe = build(feature)
        for level in LEVELS:
            for path, ways in ((small, "whole"), (large, "file,proxy")):
                out = subprocess.run([exe, path, str(level), DURATION, ways], check=True,
                                     capture_output=True, text=True, timeout=120).stdout
                rows += [json.loads(line) for line in out.splitlines()]
    print(f"{'way':6} {'level':>5} {'backend':12} {'MiB/s':>8} {'size':>10} {'ratio':>6} {'state KiB':>9}")
    for way in ("whole", "file", "proxy"):
        for level in LEVELS:
            for r in rows:
                if r["way"] == way and r["level"] == level:
                    print(f"{way:6} {level:>5} {r['backend']:12} {r['mib_s']:>8.1f} {r['size']:>10,} "
                          f"{r['input'] / r['size']:>6.2f} {r['state'] / 1024:>9.1f}")
    print(json.dumps(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
