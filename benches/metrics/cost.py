#!/usr/bin/env python3
"""What counting costs: CPU per request of two xps builds, side by side.

    cargo build --release
    XPS_BASE=/path/to/xps-before-metrics python3 benches/metrics/cost.py

The 1 KiB static file, one worker pinned to CPU 0, wrk (-t1 -c50) on CPU
1; PAIRS rounds (default 4) of XPS then XPS_BASE, each a 2 s warm-up and a
DURATION s (default 8) measured run. Reports each build's CPU time per
request, split into user and system (from /proc/PID/stat), and req/s,
per round and as medians. Counting adds user-space work only, so the
user share says how much of the total a change in user instructions
(`benches/instructions/run.py`) can move. Needs wrk. Bounded: every run
has a deadline; every process started is stopped by PID.
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cpu_split, wait_port  # noqa: E402  benches/common.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
XPS = os.environ.get("XPS", os.path.join(ROOT, "target/release/xps"))
XPS_BASE = os.environ.get("XPS_BASE") or sys.exit("XPS_BASE: the build to compare with")
PAIRS = int(os.environ.get("PAIRS", "4"))
DURATION = int(os.environ.get("DURATION", "8"))
PORT = 18895
HZ = os.sysconf("SC_CLK_TCK")


def wrk(seconds):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{seconds}s", f"http://127.0.0.1:{PORT}/1k.bin"],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout
    return int(re.search(r"(\d+) requests in", out).group(1))


def run(binary, conf):
    p = subprocess.Popen(["taskset", "-c", "0", binary, conf], stderr=subprocess.DEVNULL)
    try:
        wait_port(PORT)
        wrk(2)
        u0, s0 = cpu_split(p.pid)
        n = wrk(DURATION)
        u1, s1 = cpu_split(p.pid)
    finally:
        p.terminate()
        p.wait(timeout=15)
    return {"user_us": (u1 - u0) / HZ * 1e6 / n, "sys_us": (s1 - s0) / HZ * 1e6 / n, "rps": n / DURATION}


def main():
    with tempfile.TemporaryDirectory() as work:
        with open(os.path.join(work, "1k.bin"), "wb") as f:
            f.write(b"x" * 1024)
        conf = os.path.join(work, "xps.conf")
        with open(conf, "w") as f:
            f.write(f"workers 1;\nserver {{\n    listen 127.0.0.1:{PORT};\n    root {work};\n}}\n")
        rows = {"xps": [], "base": []}
        print(f"{'round':5} {'build':5} {'user µs/req':>12} {'sys µs/req':>11} {'CPU µs/req':>11} {'req/s':>9}")
        for i in range(PAIRS):
            for name, binary in (("xps", XPS), ("base", XPS_BASE)):
                r = run(binary, conf)
                rows[name].append(r)
                print(f"{i + 1:5} {name:5} {r['user_us']:12.3f} {r['sys_us']:11.3f} "
                      f"{r['user_us'] + r['sys_us']:11.3f} {r['rps']:9.0f}", flush=True)
        med = {n: {k: statistics.median(r[k] for r in rows[n]) for k in ("user_us", "sys_us", "rps")} for n in rows}
        cpu = {n: med[n]["user_us"] + med[n]["sys_us"] for n in med}
        print(f"\nmedians: xps {cpu['xps']:.3f} µs CPU/request (user {med['xps']['user_us']:.3f}), "
              f"base {cpu['base']:.3f} (user {med['base']['user_us']:.3f}); "
              f"xps/base CPU per request {cpu['xps'] / cpu['base']:.3f}x, req/s {med['xps']['rps'] / med['base']['rps']:.3f}x")


if __name__ == "__main__":
    main()
