#!/usr/bin/env python3
"""Reload: latency from a save to the first response of the new route, and a
storm of saves under load — xps against nginx in the same run.

    cargo build --release && python3 benches/reload/run.py

1. Latency: the config is saved 50 times (write a temporary file, rename it
   over the config, as editors do); for xps the clock starts at the rename,
   for nginx at the `nginx -s reload` that follows the same save. A probe
   then asks `/v` on fresh connections until the new answer comes. Median,
   p90 and max.
2. Storm: wrk (-t1 -c50) keeps 50 keep-alive connections busy for the
   duration while the config is saved 100 times (two valid versions in
   turn, every tenth save invalid; nginx gets `nginx -s reload` after each).
   Reported: wrk's socket errors and non-2xx answers, p99 latency, and p99
   of the same load without reloads.
Needs wrk and nginx. Bounded: every wait has a deadline; servers are stopped.
"""
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

XPS = os.path.abspath(os.environ.get("XPS", "target/release/xps"))
NGINX = os.environ.get("NGINX", "nginx")
SAVES = int(os.environ.get("SAVES", "50"))
STORM = int(os.environ.get("STORM", "100"))
XPS_PORT, NGINX_PORT = 18701, 18702


def get(port, path="/v", timeout=2.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return data.split(b"\r\n\r\n", 1)[1].decode(errors="replace") if b"\r\n\r\n" in data else None
    except OSError:
        return None


def wait_for(port, answer, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if get(port) == answer:
            return time.monotonic()
        time.sleep(0.001)
    raise SystemExit(f"port {port} never answered {answer!r}")


def save(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


class Xps:
    name = "xps"

    def __init__(self, d):
        self.d = d
        self.conf = os.path.join(d, "xps.conf")
        os.makedirs(os.path.join(d, "www"), exist_ok=True)
        with open(os.path.join(d, "www", "f.txt"), "w") as f:
            f.write("x" * 1024)
        save(self.conf, self.text("gen-0"))
        self.proc = subprocess.Popen([XPS, self.conf], stderr=open(os.path.join(d, "xps.log"), "w"))
        wait_for(XPS_PORT, "gen-0")

    def text(self, answer, valid=True):
        root = "root" if valid else "rot"
        return (f"workers 1;\nserver {{\n    listen 127.0.0.1:{XPS_PORT};\n    {root} {self.d}/www;\n"
                f"    location = /v {{\n        return 200 \"{answer}\";\n    }}\n}}\n")

    def apply(self, answer, valid=True):
        save(self.conf, self.text(answer, valid))
        return time.monotonic()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)


class Nginx:
    name = "nginx"

    def __init__(self, d):
        self.d = d
        os.chmod(d, 0o755)  # nginx workers run as nobody
        self.conf = os.path.join(d, "nginx.conf")
        os.makedirs(os.path.join(d, "www"), exist_ok=True)
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        with open(os.path.join(d, "www", "f.txt"), "w") as f:
            f.write("x" * 1024)
        save(self.conf, self.text("gen-0"))
        subprocess.run([NGINX, "-p", d + "/", "-c", self.conf, "-e", d + "/error.log"], check=True)
        wait_for(NGINX_PORT, "gen-0")

    def text(self, answer, valid=True):
        root = "root" if valid else "rot"
        return (f"worker_processes 1;\npid {self.d}/nginx.pid;\nerror_log {self.d}/error.log;\n"
                f"events {{ worker_connections 4096; }}\nhttp {{\n    access_log off;\n"
                f"    client_body_temp_path {self.d}/tmp/b; proxy_temp_path {self.d}/tmp/p;\n"
                f"    fastcgi_temp_path {self.d}/tmp/f; uwsgi_temp_path {self.d}/tmp/u; scgi_temp_path {self.d}/tmp/s;\n"
                f"    server {{\n        listen 127.0.0.1:{NGINX_PORT};\n        {root} {self.d}/www;\n"
                f"        location = /v {{ return 200 \"{answer}\"; }}\n    }}\n}}\n")

    def apply(self, answer, valid=True):
        save(self.conf, self.text(answer, valid))
        t0 = time.monotonic()
        subprocess.run([NGINX, "-p", self.d + "/", "-c", self.conf, "-e", self.d + "/error.log", "-s", "reload"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return t0

    def stop(self):
        try:
            pid = int(open(os.path.join(self.d, "nginx.pid")).read())
            os.kill(pid, 15)
            for _ in range(200):
                os.kill(pid, 0)
                time.sleep(0.02)
        except (OSError, ValueError):
            pass


def latency(server, port):
    times = []
    for i in range(1, SAVES + 1):
        t0 = server.apply(f"gen-{i}")
        t1 = wait_for(port, f"gen-{i}")
        times.append((t1 - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1], times[-1]


def wrk(port, seconds):
    out = subprocess.run(["timeout", str(seconds + 30), "wrk", "-t1", "-c50", f"-d{seconds}s", "--latency",
                          f"http://127.0.0.1:{port}/f.txt"], capture_output=True, text=True).stdout
    def grab(pattern, default="0"):
        m = re.search(pattern, out)
        return m.group(1) if m else default
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", grab(r"Socket errors: (.*)", "")))
    return {
        "requests": int(grab(r"(\d+) requests in")),
        "errors": errors,
        "non2xx": int(grab(r"Non-2xx or 3xx responses: (\d+)")),
        "p99": (re.search(r"^\s+99%\s+(\S+)", out, re.M) or [None, "?"])[1],
    }


def storm(server, port):
    seconds = max(10, STORM // 10 + 2)
    baseline = wrk(port, seconds)
    result = {}

    def saves():
        for i in range(STORM):
            valid = i % 10 != 9
            server.apply("storm-a" if i % 2 else "storm-b", valid)
            time.sleep((seconds - 2) / STORM)

    t = threading.Thread(target=saves)
    t.start()
    result = wrk(port, seconds)
    t.join()
    return baseline, result


def main():
    for tool in ("wrk", NGINX):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing")
    print(f"== reload: xps vs nginx ({subprocess.run([NGINX, '-v'], capture_output=True, text=True).stderr.strip()}) ==")
    rows = []
    with tempfile.TemporaryDirectory() as dx, tempfile.TemporaryDirectory() as dn:
        x, n = Xps(dx), Nginx(dn)
        try:
            for server, port in ((x, XPS_PORT), (n, NGINX_PORT)):
                med, p90, worst = latency(server, port)
                base, st = storm(server, port)
                rows.append((server.name, med, p90, worst, base, st))
        finally:
            x.stop()
            n.stop()
    print(f"\nlatency from save to the first response of the new route ({SAVES} saves):")
    print(f"{'server':8} {'median':>10} {'p90':>10} {'max':>10}")
    for name, med, p90, worst, _, _ in rows:
        print(f"{name:8} {med:9.1f}ms {p90:9.1f}ms {worst:9.1f}ms")
    print(f"\nstorm: wrk -t1 -c50 on a 1 KiB file while the config is saved {STORM} times (every tenth save invalid):")
    print(f"{'server':8} {'requests':>10} {'errors':>8} {'non-2xx':>8} {'p99 storm':>10} {'p99 quiet':>10}")
    for name, _, _, _, base, st in rows:
        print(f"{name:8} {st['requests']:>10} {st['errors']:>8} {st['non2xx']:>8} {st['p99']:>10} {base['p99']:>10}")


if __name__ == "__main__":
    main()
