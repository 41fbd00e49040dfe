#!/usr/bin/env python3
"""gzip of proxied responses: xps against nginx, side by side, in one run.

    cargo build --release && python3 benches/gzip/run.py

A backend nginx serves a 100 KiB text file and a 16 MiB one (text/plain,
no compression). In front of it, xps and nginx each proxy with gzip on at
the same level (`gzip_comp_level`, LEVEL, default 5; nginx with
`gzip_proxied any`, upstream keep-alive, and `proxy_max_temp_file_size 0`
so that, like xps, it stops reading from the upstream for a slow client
instead of spooling the body to disk), one worker each, pinned to
CPU 0 with the backend; wrk (-t1 -c50, DURATION s, `Accept-Encoding:
gzip`) on CPU 1, REPEAT times alternating; medians of req/s and of requests
per proxy CPU-second, and the compressed size each sends.

Then memory: SLOW (default 1,000) clients each ask for the 16 MiB text
through the proxy, read the head and a few KiB, and stop reading; the
proxy's RSS with them open, against before, per connection (what a
compressing connection holds: the relay buffers, the compressor and
whatever its socket buffers hold back).

Bounded: every wait has a deadline; every process started is stopped by
PID. Needs wrk and nginx.
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common import cpu_ticks, rss_kib, wait_port  # noqa: E402  benches/common.py

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
XPS = os.path.abspath(os.environ.get("XPS", os.path.join(ROOT, "target/release/xps")))
NGINX = os.environ.get("NGINX", "nginx")
LEVEL = int(os.environ.get("LEVEL", "5"))
DURATION = int(os.environ.get("DURATION", "10"))
REPEAT = int(os.environ.get("REPEAT", "3"))
SLOW = int(os.environ.get("SLOW", "1000"))
BACKEND, XPS_PORT, NGINX_PORT = 18960, 18961, 18962
HZ = os.sysconf("SC_CLK_TCK")

WORDS = ("the of and to in is it that was for on are with as his they be at one have this from "
         "or had by hot word but what some we can out other were all there when up use your how "
         "said an each she which do their time if will way about many then them write would like").split()


def text(n):
    import random
    rnd = random.Random(7)
    out, size = [], 0
    while size < n:
        w = rnd.choice(WORDS) + ("\n" if rnd.random() < 0.1 else " ")
        out.append(w)
        size += len(w)
    return "".join(out)


def nginx_conf(work, name, body):
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""user root;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 10240; }}
http {{
    access_log off;
    default_type application/octet-stream;
    types {{ text/plain txt; }}
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
{body}
}}
""")
    return d, conf


def start_nginx(d, conf, pin):
    subprocess.run(["taskset", "-c", pin, NGINX, "-p", d + "/", "-c", conf, "-e", d + "/error.log"], check=True)
    with open(os.path.join(d, "nginx.pid")) as f:
        master = int(f.read())
    kids = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return [master] + [int(k) for k in kids]


def stop_nginx(d):
    try:
        with open(os.path.join(d, "nginx.pid")) as f:
            os.kill(int(f.read()), 15)
    except (OSError, ValueError):
        pass
    time.sleep(0.3)


def wrk(port, path):
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", "-c50", f"-d{DURATION}s", "-H", "Accept-Encoding: gzip",
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, timeout=DURATION + 60,
    ).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, reqs


def compressed_size(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    if b"chunked" in head.lower():
        out = b""
        while True:
            line, body = body.split(b"\r\n", 1)
            n = int(line, 16)
            if n == 0:
                break
            out += body[:n]
            body = body[n + 2:]
        body = out
    assert b"content-encoding: gzip" in head.lower(), head
    return len(body)


def slow_readers(port, pids):
    base = rss_kib(*pids)
    conns = []
    req = b"GET /16m.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
    for _ in range(SLOW):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(req)
        conns.append(s)
    for s in conns:
        got = b""
        while len(got) < 4096:
            b = s.recv(4096)
            if not b:
                break
            got += b
    time.sleep(2)  # a measuring window: the proxies settle at their bounds
    with_them = rss_kib(*pids)
    for s in conns:
        s.close()
    return base, with_them


def main():
    with tempfile.TemporaryDirectory() as work:
        www = os.path.join(work, "www")
        os.makedirs(www)
        small = text(100 << 10)
        with open(os.path.join(www, "100k.txt"), "w") as f:
            f.write(small)
        with open(os.path.join(www, "16m.txt"), "w") as f:
            f.write(text(16 << 20))
        bd, bconf = nginx_conf(work, "backend", f"""    server {{
        listen 127.0.0.1:{BACKEND};
        root {www};
        keepalive_requests 1000000;
    }}""")
        nd, nconf = nginx_conf(work, "proxy", f"""    upstream app {{ server 127.0.0.1:{BACKEND}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # As xps does: a slow client stops reads from the upstream
            # (no spooling of the body to disk).
            proxy_max_temp_file_size 0;
            gzip on;
            gzip_proxied any;
            gzip_comp_level {LEVEL};
            gzip_types text/plain;
        }}
    }}""")
        xconf = os.path.join(work, "xps.conf")
        with open(xconf, "w") as f:
            f.write(f"""workers 1;
max_connections 20000;
upstream app {{
    server 127.0.0.1:{BACKEND};
    keepalive 64;
}}
server {{
    listen 127.0.0.1:{XPS_PORT};
    location / {{
        proxy_pass app;
        gzip on;
        gzip_comp_level {LEVEL};
        gzip_types text/plain;
    }}
}}
""")
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        start_nginx(bd, bconf, "0")
        wait_port(BACKEND)
        rows = {"xps": [], "nginx": []}
        sizes = {}
        try:
            for _ in range(REPEAT):
                for name in ("xps", "nginx"):
                    if name == "xps":
                        p = subprocess.Popen(["taskset", "-c", "0", XPS, xconf], stderr=subprocess.DEVNULL)
                        pids, port = [p.pid], XPS_PORT
                    else:
                        pids, port = start_nginx(nd, nconf, "0"), NGINX_PORT
                    wait_port(port)
                    sizes[name] = compressed_size(port, "/100k.txt")
                    wrk(port, "/100k.txt")  # warm-up
                    t0 = cpu_ticks(*pids)
                    rps, reqs = wrk(port, "/100k.txt")
                    cpu = (cpu_ticks(*pids) - t0) / HZ
                    rows[name].append((rps, reqs / cpu if cpu else 0))
                    print(f"{name:6} {rps:10.0f} req/s {reqs / cpu if cpu else 0:10.0f} req/CPU-s", flush=True)
                    if name == "xps":
                        p.terminate()
                        p.wait(timeout=15)
                    else:
                        stop_nginx(nd)
            print(f"\nproxied 100 KiB text, gzip level {LEVEL}, medians of {REPEAT} (original {len(small)} bytes):")
            med = {n: (statistics.median(r[0] for r in rows[n]), statistics.median(r[1] for r in rows[n])) for n in rows}
            for n in ("xps", "nginx"):
                print(f"  {n:6} {med[n][0]:10.0f} req/s {med[n][1]:10.0f} req/CPU-s  compressed {sizes[n]} bytes")
            print(f"  xps/nginx: req/s {med['xps'][0] / med['nginx'][0]:.2f}x, per CPU-second {med['xps'][1] / med['nginx'][1]:.2f}x")
            print(f"\n{SLOW} slow readers of a 16 MiB compressible proxied body:")
            for name in ("xps", "nginx"):
                if name == "xps":
                    p = subprocess.Popen([XPS, xconf], stderr=subprocess.DEVNULL)
                    pids, port = [p.pid], XPS_PORT
                else:
                    pids, port = start_nginx(nd, nconf, "0-1"), NGINX_PORT
                wait_port(port)
                base, with_them = slow_readers(port, pids)
                print(f"  {name:6} RSS {base} KiB before, {with_them} KiB with them: "
                      f"{(with_them - base) / SLOW:.1f} KiB per connection", flush=True)
                if name == "xps":
                    p.terminate()
                    p.wait(timeout=15)
                else:
                    stop_nginx(nd)
        finally:
            stop_nginx(nd)
            stop_nginx(bd)


if __name__ == "__main__":
    main()
