#!/usr/bin/env python3
"""Instructions per request: xps builds side by side, counted, not timed.

    cargo build --release && python3 benches/instructions/run.py
    XPS_BASE=/path/to/earlier/xps python3 benches/instructions/run.py

Runs each xps build under `valgrind --tool=callgrind` (which counts the
instructions the process executes, the same count whatever else the machine
is doing) for three workloads, each at two request counts, and reports
(instructions at N2 - instructions at N1) / (N2 - N1): the cost of one
request with start-up and shutdown taken out.

  static   GET of a 1 KiB file (one worker, keep-alive)
  404      GET of a missing file
  proxy    GET proxied to a backend (a small Python HTTP/1.1 server on
           loopback, keep-alive) that answers 1 KiB
  static-ae  static, with a browser's Accept-Encoding
  gzip-on    static-ae with `gzip on` for the route (the 1 KiB file is not
           a gzip type: what negotiation alone costs)
  limits     static with `limit_req` and `limit_conn` on the route, never
           reached (rate 1,000,000r/s, 100,000 at once): what checking costs
  auth       static with `auth_basic` (apr1) and the right password: the
           remembered-credential path
  real-ip    static with `set_real_ip_from` and an `X-Forwarded-For` sent
  log        static with `access_log` in the combined format (to a file
           outside the served and config folders, as in /var/log)
  log-here   the same log written into the served folder, which is also
           the config's: every line is a change both file watches see
  log-json   static with `access_log` in a JSON `log_format` of 9 variables
  static-unix  static, the clients on a `listen unix:` socket (a build
           without Unix socket listeners shows n/a)

WORKLOADS="static-ae gzip-on" runs only those.

Clients: 10 keep-alive connections, requests spread evenly, one at a time
per connection. Bounded: every wait has a deadline; every process started
here is stopped. Needs valgrind (apt-get install -y valgrind).
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import free_port, wait_port  # noqa: E402  benches/common.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
XPS = os.environ.get("XPS", os.path.join(ROOT, "target/release/xps"))
XPS_BASE = os.environ.get("XPS_BASE", "")
N1 = int(os.environ.get("N1", "1000"))
N2 = int(os.environ.get("N2", "3000"))
CONNS = 10
# What a browser sends, for the gzip workloads.
ACCEPT = "Accept-Encoding: gzip, deflate, br, zstd\r\n"
BODY = b"x" * 1024


def read_response(s, buf):
    """Reads one Content-Length response from s; returns the rest."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed")
        rest += chunk
    return rest[n:]


def connect(port, unix):
    if unix is None:
        return socket.create_connection(("127.0.0.1", port), timeout=60)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(unix)
    return s


def load(port, path, count, extra="", unix=None):
    conns = [connect(port, unix) for _ in range(CONNS)]
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()
    bufs = [b""] * CONNS
    for i in range(count):
        k = i % CONNS
        conns[k].sendall(req)
        bufs[k] = read_response(conns[k], bufs[k])
    for c in conns:
        c.close()


def unix_listeners(binary, work):
    """Whether this build takes `listen unix:` (older ones do not)."""
    conf = os.path.join(work, "probe.conf")
    with open(conf, "w") as f:
        f.write(f"server {{\n    listen unix:{work}/probe.sock;\n    return 204;\n}}\n")
    run = subprocess.run([binary, "--check", conf], capture_output=True, timeout=60)
    return run.returncode == 0


def backend():
    """A keep-alive HTTP/1.1 server answering 1 KiB, on its own thread."""
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", 0))
    l.listen(64)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n" + BODY

    def serve(c):
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                _, buf = buf.split(b"\r\n\r\n", 1)
                c.sendall(answer)

    def accept():
        while True:
            c, _ = l.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return l.getsockname()[1]


def instructions(binary, conf_text, port, path, count, work, extra="", unix=None):
    conf = os.path.join(work, "xps.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    out = os.path.join(work, "callgrind.out")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, conf],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, deadline=60.0)
        load(port, path, count, extra, unix)
    finally:
        server.terminate()
        server.wait(timeout=120)
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    sys.exit("no instruction count in " + out)


def main():
    builds = [("xps", XPS)] + ([("xps-base", XPS_BASE)] if XPS_BASE else [])
    backend_port = backend()
    print(f"instructions per request (callgrind; ({N2} - {N1}) requests, {CONNS} keep-alive connections)")
    print(f"{'workload':10} " + " ".join(f"{name:>12}" for name, _ in builds)
          + ("   xps/base" if XPS_BASE else ""))
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as logs:
        with open(os.path.join(work, "1k.bin"), "wb") as f:
            f.write(BODY)
        rows = {}
        workloads = [("static", "/1k.bin"), ("404", "/missing"), ("proxy", "/"),
                     ("static-ae", "/1k.bin"), ("gzip-on", "/1k.bin"),
                     ("limits", "/1k.bin"), ("auth", "/1k.bin"), ("real-ip", "/1k.bin"),
                     ("log", "/1k.bin"), ("log-here", "/1k.bin"), ("log-json", "/1k.bin"),
                     ("static-unix", "/1k.bin")]
        with open(os.path.join(work, "htpasswd"), "w") as f:
            # `htpasswd -nbm user secret`
            f.write("user:$apr1$cexihJm9$BmZkbwEqYKQ.wmj74Ygs2.\n")
        only = os.environ.get("WORKLOADS")
        if only:
            workloads = [w for w in workloads if w[0] in only.split()]
        for workload, path in workloads:
            per = []
            for name, binary in builds:
                if workload == "static-unix" and name == "xps-base" and not unix_listeners(binary, work):
                    per.append(float("nan"))
                    continue
                counts = []
                for n in (N1, N2):
                    port = free_port()
                    main = ""
                    extra = ""
                    if workload == "proxy":
                        route = f"location / {{ proxy_pass 127.0.0.1:{backend_port}; }}"
                    elif workload == "gzip-on":
                        route = f"root {work};\n    gzip on;\n    gzip_types text/plain text/html;"
                    elif workload == "limits":
                        main = ("limit_req_zone $binary_remote_addr zone=r:1m rate=1000000r/s;\n"
                                "limit_conn_zone $binary_remote_addr zone=c:1m;\n")
                        route = (f"root {work};\n    limit_req zone=r burst=100000 nodelay;\n"
                                 "    limit_conn c 60000;")
                    elif workload == "auth":
                        route = (f"root {work};\n    auth_basic team;\n"
                                 f"    auth_basic_user_file {work}/htpasswd;")
                        extra = "Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"
                    elif workload == "real-ip":
                        route = (f"root {work};\n    set_real_ip_from 127.0.0.1;\n"
                                 "    real_ip_header X-Forwarded-For;")
                        extra = "X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\n"
                    elif workload == "log":
                        # Logs outside the served and config folders (as
                        # in /var/log): their writes wake no file watch.
                        route = f"root {work};\n    access_log {logs}/access.log;"
                    elif workload == "log-here":
                        route = f"root {work};\n    access_log {work}/access.log;"
                    elif workload == "log-json":
                        main = ("log_format j escape=json '{\"t\":\"$time_iso8601\",\"ip\":\"$remote_addr\","
                                "\"r\":\"$request\",\"s\":$status,\"b\":$body_bytes_sent,\"id\":\"$request_id\","
                                "\"ua\":\"$http_user_agent\",\"ref\":\"$http_referer\",\"took\":$request_time}';\n")
                        route = f"root {work};\n    access_log {logs}/access.json j;"
                    else:
                        route = f"root {work};"
                    if workload in ("static-ae", "gzip-on"):
                        extra = ACCEPT
                    unix = None
                    listen = f"listen 127.0.0.1:{port};"
                    if workload == "static-unix":
                        # Bound first, so it is ready when the port is.
                        unix = os.path.join(logs, "xps.sock")
                        listen = f"listen unix:{unix};\n    {listen}"
                    conf = f"workers 1;\n{main}server {{\n    {listen}\n    {route}\n}}\n"
                    counts.append(instructions(binary, conf, port, path, n, work, extra, unix))
                per.append((counts[1] - counts[0]) / (N2 - N1))
            rows[workload] = per
            line = f"{workload:10} " + " ".join(
                "n/a".rjust(12) if p != p else f"{p:12.0f}" for p in per)
            if XPS_BASE and per[1] == per[1]:
                line += f"   {per[0] / per[1]:8.3f}x"
            print(line, flush=True)


if __name__ == "__main__":
    main()
