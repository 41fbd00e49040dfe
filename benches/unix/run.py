#!/usr/bin/env python3
"""Static serving on a Unix socket and on TCP: xps against nginx, same
file, same machine, same run.

    cargo build --release && python3 benches/unix/run.py

wrk cannot connect to Unix sockets, so the client is the small one in
this folder (built here, std only): CONNS keep-alive connections with one
request each in flight, DURATION seconds. One worker each; the server is
pinned to CPU 0 and the client to CPU 1. Each of the four runs (xps and
nginx, Unix socket and TCP) is repeated REPEAT times, alternating; the
median is reported: requests per second, the server's CPU time and
requests per server CPU-second, then xps/nginx. Both servers log nothing
per request and serve the same 1 KiB file. Bounded: every wait has a
deadline, every process started here is stopped.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from common import cpu_ticks, free_port, wait_port  # noqa: E402  benches/common.py

XPS = os.environ.get("XPS", os.path.join(ROOT, "target/release/xps"))
NGINX = os.environ.get("NGINX", "nginx")
DURATION = float(os.environ.get("DURATION", "8"))
CONNS = int(os.environ.get("CONNS", "50"))
REPEAT = int(os.environ.get("REPEAT", "3"))
TICK = os.sysconf("SC_CLK_TCK")


def wait_path(path, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        if os.path.exists(path):
            return
        time.sleep(0.02)
    sys.exit(f"{path} did not appear")


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=HERE, check=True, timeout=600)
    client = os.path.join(HERE, "target/release/xps-unix-load")
    with tempfile.TemporaryDirectory() as work:
        www = os.path.join(work, "www")
        os.makedirs(www)
        with open(os.path.join(www, "1k.bin"), "wb") as f:
            f.write(os.urandom(1024))
        os.makedirs(os.path.join(work, "nginx/tmp"))
        xport, nport = free_port(), free_port()
        xsock, nsock = os.path.join(work, "xps.sock"), os.path.join(work, "nginx.sock")
        with open(os.path.join(work, "xps.conf"), "w") as f:
            f.write(f"workers 1;\nserver {{\n    listen unix:{xsock};\n"
                    f"    listen 127.0.0.1:{xport};\n    root {www};\n}}\n")
        with open(os.path.join(work, "nginx/nginx.conf"), "w") as f:
            tmp = os.path.join(work, "nginx/tmp")
            f.write(f"""worker_processes 1;
pid {work}/nginx/nginx.pid;
error_log {work}/nginx/error.log;
events {{ worker_connections 10240; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen unix:{nsock};
        listen 127.0.0.1:{nport};
        root {www};
    }}
}}
""")
        procs = []
        try:
            xps = subprocess.Popen(["taskset", "-c", "0", XPS, os.path.join(work, "xps.conf")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(xps)
            subprocess.run(["taskset", "-c", "0", NGINX, "-c", os.path.join(work, "nginx/nginx.conf")],
                           check=True, timeout=30)
            wait_port(xport)
            wait_port(nport)
            wait_path(xsock)
            wait_path(nsock)
            with open(os.path.join(work, "nginx/nginx.pid")) as f:
                master = int(f.read())
            workers = [int(p) for p in subprocess.run(
                ["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()]
            servers = {"xps": [xps.pid], "nginx": workers}
            targets = {("xps", "unix"): f"unix:{xsock}", ("xps", "tcp"): f"127.0.0.1:{xport}",
                       ("nginx", "unix"): f"unix:{nsock}", ("nginx", "tcp"): f"127.0.0.1:{nport}"}
            results = {k: [] for k in targets}
            for _ in range(REPEAT):
                for (server, kind), target in targets.items():
                    before = cpu_ticks(*servers[server])
                    start = time.time()
                    out = subprocess.run(
                        ["taskset", "-c", "1", client, target, "/1k.bin", str(CONNS), str(DURATION)],
                        capture_output=True, text=True, timeout=DURATION + 60, check=True)
                    elapsed = time.time() - start
                    cpu = (cpu_ticks(*servers[server]) - before) / TICK
                    done = int(out.stdout)
                    results[(server, kind)].append((done / elapsed, cpu, done / cpu if cpu else 0))
            print(f"1 KiB file, {CONNS} connections, {DURATION:g} s, median of {REPEAT}")
            print(f"{'':14} {'req/s':>10} {'server CPU s':>13} {'req/CPU-s':>11}")
            med = {}
            for key, runs in results.items():
                rps = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                per = statistics.median(r[2] for r in runs)
                med[key] = (rps, per)
                print(f"{key[0] + ' ' + key[1]:14} {rps:10.0f} {cpu:13.2f} {per:11.0f}")
            for kind in ("unix", "tcp"):
                x, n = med[("xps", kind)], med[("nginx", kind)]
                print(f"xps/nginx {kind:4}: {x[0] / n[0]:.2f}x req/s, {x[1] / n[1]:.2f}x per CPU-second")
        finally:
            for p in procs:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
            pidfile = os.path.join(work, "nginx/nginx.pid")
            if os.path.exists(pidfile):
                with open(pidfile) as f:
                    subprocess.run(["kill", f.read().strip()], check=False)
                end = time.time() + 10
                while os.path.exists(pidfile) and time.time() < end:
                    time.sleep(0.05)


if __name__ == "__main__":
    main()
