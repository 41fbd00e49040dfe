#!/usr/bin/env python3
"""Idle keep-alive connections: memory per connection and idle CPU.

    cargo build --release && python3 benches/http/idle.py

Starts xps (workers 1) on a loopback port, then:
  1. opens N connections (default 10,000), each sends one request and reads
     its response, so every one is an idle kept-alive connection; reports the
     server's RSS before and after, and the difference per connection;
  2. with 1,000 idle connections open, samples the server's CPU time over
     10 seconds;
  3. starts xps again with 64 descriptors (`ulimit -n 64`) and opens 120
     connections, so accept fails with EMFILE while the rest wait in the
     backlog, and samples its CPU time over 5 seconds (a loop spinning on
     the error would take the whole core).
Bounded: every step has a deadline; the server is stopped at the end.
"""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cpu_ticks, rss_kib, wait_port  # noqa: E402  benches/common.py

XPS = os.environ.get("XPS", "target/release/xps")
N = int(os.environ.get("N", "10000"))
PORT = int(os.environ.get("PORT", "18483"))


def open_idle(count):
    conns = []
    req = b"GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"ok\n"):
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("a connection closed")
            data += chunk
        conns.append(s)
    return conns


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, N + 1024), hard))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "f.txt"), "w") as f:
            f.write("ok\n")
        conf = os.path.join(d, "xps.conf")
        with open(conf, "w") as f:
            f.write(f"workers 1;\nmax_connections {N + 1000};\nkeepalive_timeout 5m;\n"
                    f"server {{ listen 127.0.0.1:{PORT}; root {d}; }}\n")
        server = subprocess.Popen([XPS, conf], stderr=subprocess.DEVNULL)
        try:
            wait_port(PORT)
            warm = open_idle(10)
            before = rss_kib(server.pid)
            conns = open_idle(N)
            after = rss_kib(server.pid)
            print(f"idle keep-alive connections: {N}")
            print(f"RSS before: {before} KiB, after: {after} KiB, "
                  f"per connection: {(after - before) * 1024 / N:.0f} bytes")
            for s in conns[1000:]:
                s.close()
            time.sleep(1)  # let the closes settle before measuring idle CPU
            t0 = cpu_ticks(server.pid)
            start = time.time()
            time.sleep(10)
            used = cpu_ticks(server.pid) - t0
            hz = os.sysconf("SC_CLK_TCK")
            print(f"idle CPU with 1000 open connections over {time.time() - start:.1f} s: "
                  f"{used} ticks = {100.0 * used / hz / 10:.2f}%")
            for s in conns[:1000] + warm:
                s.close()
        finally:
            server.terminate()
            server.wait(timeout=15)
        out_of_descriptors(conf)


def out_of_descriptors(conf):
    """CPU while accept fails for want of descriptors."""
    limit = 64
    server = subprocess.Popen(
        ["sh", "-c", f'ulimit -n {limit} && exec "$0" "$@"', XPS, conf],
        stderr=subprocess.DEVNULL,
    )
    crowd = []
    try:
        wait_port(PORT)
        for _ in range(120):
            crowd.append(socket.create_connection(("127.0.0.1", PORT), timeout=10))
        time.sleep(0.5)  # let the worker meet EMFILE before measuring
        t0 = cpu_ticks(server.pid)
        start = time.time()
        time.sleep(5)
        used = cpu_ticks(server.pid) - t0
        hz = os.sysconf("SC_CLK_TCK")
        print(f"out of descriptors ({limit}, 120 clients) over {time.time() - start:.1f} s: "
              f"{used} ticks = {100.0 * used / hz / 5:.2f}% CPU")
    finally:
        for s in crowd:
            s.close()
        server.terminate()
        server.wait(timeout=15)


if __name__ == "__main__":
    main()
