#!/usr/bin/env python3
"""Hostile clients: xps against nginx, side by side, in one run.

    XPS=target/release/xps python3 benches/hostile/run.py            # full run
    QUICK=1 python3 benches/hostile/run.py                           # smoke check, < 1 min
    SCENARIOS="slowloris flood" python3 benches/hostile/run.py       # some scenarios only

Scenarios (see benches/hostile/README.md):
  slowloris  proxied 1 KiB route; wrk quiet, then wrk while TRICKLERS header
             tricklers and TRICKLERS body tricklers send a byte every
             TRICKLE_INTERVAL s (reconnecting when cut); throughput under
             attack as % of quiet, and when/how the tricklers were cut.
  flood      FLOOD silent connections while a probe asks for a file every
             100 ms; what became of the connections, probe success and
             latency, recovery after the flood closes.
  bigheads   BIGHEADS connections each holding a nearly full (15 KiB) head;
             the server's RSS before and with them, per connection.
  slowhead   one connection sends a 16/32/64 KiB head one byte per send;
             the server's CPU time per KiB for each size.

Everything runs on loopback, servers on CPU 0 (taskset-equivalent
sched_setaffinity), clients on CPU 1; every load loop is bounded in count
and time, and every process started here is stopped by PID (try/finally).
Stdlib only, plus the wrk and nginx binaries. Results: a table on stdout
and JSON in benches/out/hostile/.
"""
import errno
import heapq
import json
import os
import random
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "benches", "out", "hostile")
WORK = os.path.join(OUT, "work")

IP_BIND_ADDRESS_NO_PORT = 24


def now():
    return time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process


def env_int(name, default, quick):
    return int(os.environ.get(name, quick if QUICK else default))


def env_float(name, default, quick):
    return float(os.environ.get(name, quick if QUICK else default))


QUICK = os.environ.get("QUICK", "") not in ("", "0")
_xps = os.environ.get("XPS", "target/release/xps")
XPS = os.path.abspath(_xps if os.path.isabs(_xps) or os.path.exists(_xps) else os.path.join(ROOT, _xps))
NGINX = os.environ.get("NGINX", "nginx")
WRK = os.environ.get("WRK", "wrk")
SCENARIOS = os.environ.get("SCENARIOS", "slowloris flood bigheads slowhead").split()
DURATION = env_int("DURATION", 10, 2)              # wrk seconds (quiet and under attack)
CONNS = env_int("CONNS", 50, 50)                    # wrk connections
TRICKLERS = env_int("TRICKLERS", 1000, 100)         # header tricklers, and as many body tricklers
TRICKLE_INTERVAL = env_float("TRICKLE_INTERVAL", 2.0, 2.0)
TRICKLE_SECONDS = env_float("TRICKLE_SECONDS", 30, 8)  # the whole trickle phase
RECONNECT = env_int("RECONNECT", 1, 1)              # a cut trickler is replaced at once
NGINX_VARIANTS = os.environ.get("NGINX_VARIANTS", "60s" if QUICK else "60s 10s").split()
FLOOD = env_int("FLOOD", 20000, 2000)
FLOOD_MAX_CONNS = env_int("FLOOD_MAX_CONNS", 10000, 1000)  # xps max_connections / nginx worker_connections
FLOOD_HOLD = env_float("FLOOD_HOLD", 8, 4)          # seconds from the first connect to the close
RECOVERY_SECONDS = env_float("RECOVERY_SECONDS", 10, 2)
PROBE_INTERVAL = env_float("PROBE_INTERVAL", 0.1, 0.1)
PROBE_TIMEOUT = env_float("PROBE_TIMEOUT", 2.0, 2.0)
BIGHEADS = env_int("BIGHEADS", 10000, 1000)
BIGHEAD_KIB = env_int("BIGHEAD_KIB", 15, 15)
BIGHEAD_ROUNDS = env_int("BIGHEAD_ROUNDS", 3, 1)
SLOWHEAD_FIELD = env_int("SLOWHEAD_FIELD", 1000, 1000)  # bytes per header field value (xps takes 100 fields at most)
SLOWHEAD_SIZES = [int(x) for x in os.environ.get("SLOWHEAD_SIZES", "8 16 32" if QUICK else "16 32 64").split()]
SLOWHEAD_REPEAT = env_int("SLOWHEAD_REPEAT", 3, 1)
SLOWHEAD_PAUSE_US = env_float("SLOWHEAD_PAUSE_US", 30, 30)
SLOWHEAD_NGINX = env_int("SLOWHEAD_NGINX", 1, 1)
BASE_PORT = env_int("BASE_PORT", 18950, 18950)
HZ = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- helpers

def nofile_limit():
    """The most descriptors a process may have here (the hard limit)."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


CPUS = sorted(os.sched_getaffinity(0))


def pinned(cpu_index):
    """preexec_fn: pin to one CPU (as taskset -c) and raise the fd limit."""
    cpu = CPUS[cpu_index % len(CPUS)] if len(CPUS) > 1 else None

    def fn():
        raise_nofile()
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
    return fn


def pin_self(cpu_index):
    if len(CPUS) > 1:
        os.sched_setaffinity(0, {CPUS[cpu_index % len(CPUS)]})


def free_ports(n, start):
    ports, p = [], start
    while len(ports) < n and p < start + 1000:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            ports.append(p)
        except OSError:
            pass
        finally:
            s.close()
        p += 1
    if len(ports) < n:
        raise SystemExit("no free loopback ports")
    return ports


def wait_port(port, deadline=10.0):
    end = now() + deadline
    while now() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"port {port} did not open")


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rss_kib(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        t += int(line.split()[1])
        except OSError:
            pass
    return t


def cpu_usage(pids):
    """(utime+stime in µs from /proc/PID/stat, on-CPU ns from schedstat) summed."""
    ticks, ns = 0, 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    ns += int(f.read().split()[0])
        except OSError:
            pass
    return ticks * 1e6 / HZ, ns


def socket_fds(pids):
    n = 0
    for p in pids:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    if os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:"):
                        n += 1
                except OSError:
                    pass
        except OSError:
            pass
    return n


def accept_queue(port):
    """Connections waiting in the kernel's accept queue of 127.0.0.1:port."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want and parts[3] == "0A":  # LISTEN
                return int(parts[4].split(":")[1], 16)
    return None


def _descendants_cpu_ticks():
    """utime+stime ticks of this process's live descendants (servers, nginx workers, clients)."""
    parent, ticks = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parent[int(d)] = int(fields[1])
                ticks[int(d)] = int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
    me, total = os.getpid(), 0
    for pid in ticks:
        p, seen = pid, 0
        while p > 1 and seen < 64:
            p = parent.get(p, 0)
            seen += 1
            if p == me:
                total += ticks[pid]
                break
    return total


def _busy_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user, nice, system, steal: irq and softirq time (loopback traffic) is
    # charged to no process, so it is left out on both sides
    return v[0] + v[1] + v[2] + (v[7] if len(v) > 7 else 0)


class ForeignCpu:
    """CPU used during a window by processes that are not this benchmark's
    (another build, tests), in CPUs (1.0 = one core busy all along)."""

    def __enter__(self):
        self.t = now()
        self.busy = _busy_ticks()
        self.ours = _descendants_cpu_ticks()
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        s = resource.getrusage(resource.RUSAGE_SELF)
        self.reaped = r.ru_utime + r.ru_stime + s.ru_utime + s.ru_stime
        return self

    def __exit__(self, *exc):
        dt = now() - self.t
        busy = (_busy_ticks() - self.busy) / HZ
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        s = resource.getrusage(resource.RUSAGE_SELF)
        reaped = r.ru_utime + r.ru_stime + s.ru_utime + s.ru_stime - self.reaped
        ours = (_descendants_cpu_ticks() - self.ours) / HZ + reaped
        self.foreign = max(0.0, (busy - ours) / dt) if dt > 0 else None
        return False


def established_to(port):
    """Established connections into 127.0.0.1:port (counted on the server side)."""
    want = f"0100007F:{port:04X}"
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want and parts[3] == "01":
                n += 1
    return n


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q / 100.0 * (len(v) - 1)))))]


def fmt(v, spec="{:.1f}", none="–"):
    return none if v is None else spec.format(v)


def run_child(role, args, cpu=1):
    """Starts `run.py --child ROLE` pinned to a client CPU; returns the Popen."""
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", role, json.dumps(args)],
                            preexec_fn=pinned(cpu))


def wait_file(path, deadline):
    end = now() + deadline
    while now() < end:
        if os.path.exists(path):
            with open(path) as f:
                data = f.read()
            if data.endswith("\n"):
                return json.loads(data)
        time.sleep(0.02)
    raise RuntimeError(f"{path} did not appear within {deadline} s")


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(obj) + "\n")
    os.rename(tmp, path)


def http_get(port, path="/1k.bin", timeout=2.0, extra=b""):
    """One request on a fresh connection; (ok, latency s, detail)."""
    t0 = now()
    data = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.05, timeout - (now() - t0)))
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra + b"\r\n")
            while True:
                if now() - t0 > timeout:
                    return False, now() - t0, "timeout"
                s.settimeout(max(0.05, timeout - (now() - t0)))
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        status = data[9:12].decode(errors="replace") if data.startswith(b"HTTP/1.") else "none"
        return status == "200", now() - t0, status
    except socket.timeout:
        return False, now() - t0, "timeout"
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e))
        if data.startswith(b"HTTP/1."):  # an answer, then a reset
            return False, now() - t0, data[9:12].decode(errors="replace") + "+" + err
        return False, now() - t0, err


# ---------------------------------------------------------------- servers

def nginx_temps(d):
    return " ".join(f"{k}_temp_path {d}/tmp/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


class Server:
    """A server started here, pinned to CPU 0, with the hard fd limit."""

    def __init__(self, name, kind, port):
        self.name, self.kind, self.port = name, kind, port
        self.proc = None
        self.dir = os.path.join(WORK, name)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)

    def start_xps(self, conf):
        path = os.path.join(self.dir, "xps.conf")
        with open(path, "w") as f:
            f.write(conf)
        check = subprocess.run([XPS, "--check", path], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"xps --check {path}:\n{check.stderr}")
        self.log = open(os.path.join(self.dir, "logs", "xps.log"), "w")
        self.proc = subprocess.Popen([XPS, path], stdout=self.log, stderr=self.log, preexec_fn=pinned(0))
        wait_port(self.port)
        return self

    def start_nginx(self, conf):
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        err = os.path.join(self.dir, "logs", "error.log")
        t = subprocess.run([NGINX, "-t", "-q", "-p", self.dir + "/", "-c", path, "-e", err],
                           capture_output=True, text=True, timeout=30)
        if t.returncode != 0:
            raise RuntimeError(f"nginx -t {path}:\n{t.stderr}")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir + "/", "-c", path, "-e", err],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pinned(0))
        wait_port(self.port)
        end = now() + 5
        while not children_of(self.proc.pid) and now() < end:
            time.sleep(0.02)
        self.workers0 = sorted(children_of(self.proc.pid))
        return self

    def pids(self):
        if self.proc is None:
            return []
        if self.kind == "xps":
            return [self.proc.pid]
        return [self.proc.pid] + children_of(self.proc.pid)

    def up(self):
        """Still running, and (nginx) with the same workers it started with."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        if self.kind == "nginx":
            return sorted(children_of(self.proc.pid)) == self.workers0 and all(alive(p) for p in self.workers0)
        return True

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        kids = children_of(self.proc.pid) if self.kind == "nginx" else []
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for k in kids:
            if alive(k):
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
        self.proc = None

    def log_tail(self, n=5):
        f = os.path.join(self.dir, "logs", "xps.log" if self.kind == "xps" else "error.log")
        try:
            with open(f, errors="replace") as fh:
                lines = fh.readlines()
            return len(lines), os.path.getsize(f), [l.rstrip() for l in lines[-n:]]
        except OSError:
            return 0, 0, []


STARTED = []


def start(server, conf):
    STARTED.append(server)
    return server.start_xps(conf) if server.kind == "xps" else server.start_nginx(conf)


def stop(server):
    server.stop()
    if server in STARTED:
        STARTED.remove(server)


def nginx_conf(d, port, workers_conns, body, extra_http="", listen_extra=" backlog=4096"):
    nf = nofile_limit()
    return f"""daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile {nf};
pid {d}/nginx.pid;
error_log {d}/logs/error.log error;
events {{ worker_connections {workers_conns}; }}
http {{
    access_log off;
    log_not_found off;
    default_type application/octet-stream;
    {nginx_temps(d)}
    {extra_http}
    server {{
        listen 127.0.0.1:{port}{listen_extra};
{body}
    }}
}}
"""


def make_www():
    www = os.path.join(WORK, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "1k.bin"), "wb") as f:
        f.write(bytes(random.getrandbits(8) for _ in range(1024)))
    for p in (OUT, WORK, www):
        os.chmod(p, 0o755)
    os.chmod(os.path.join(www, "1k.bin"), 0o644)
    return www


# ---------------------------------------------------------------- wrk

def to_ms(s):
    for unit, k in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4)):
        if s.endswith(unit):
            return float(s[: -len(unit)]) * k
    return float(s)


def wrk(port, seconds, path="/"):
    out = subprocess.run([WRK, "-t1", f"-c{CONNS}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=seconds + 30, preexec_fn=pinned(1)).stdout
    r = {"rps": None, "p50_ms": None, "p99_ms": None, "requests": None, "non2xx": 0, "socket_errors": "", "raw": out}
    for line in out.splitlines():
        w = line.split()
        if line.startswith("Requests/sec:"):
            r["rps"] = float(w[1])
        elif "requests in" in line:
            r["requests"] = int(w[0])
        elif w[:1] == ["50%"]:
            r["p50_ms"] = to_ms(w[1])
        elif w[:1] == ["99%"]:
            r["p99_ms"] = to_ms(w[1])
        elif line.strip().startswith("Non-2xx"):
            r["non2xx"] = int(w[-1])
        elif line.strip().startswith("Socket errors"):
            r["socket_errors"] = line.strip()
    return r


# ---------------------------------------------------------------- children (client processes)

def child_trickle(a):
    """Header and body tricklers: one byte every `interval` s per connection,
    replaced when cut (RECONNECT), for `seconds`; writes what happened."""
    raise_nofile()
    port, interval, end = a["port"], a["interval"], now() + a["seconds"]
    max_opened = a["max_opened"]
    head_prefix = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: trickle\r\nX-Slow: "
    body_head = (b"POST /upload HTTP/1.1\r\nHost: x\r\nUser-Agent: trickle\r\n"
                 b"Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n")
    sel = selectors.DefaultSelector()
    heap = []  # (when, seq, conn, what): what is "connect" (deadline) or "send"
    seq = [0]
    stats = {k: {"opened": 0, "connected": 0, "connect_failed": 0, "cut": 0, "how": {}, "cut_after": [],
                 "first_cut_after": [], "open_at_end": 0, "bytes_sent": 0} for k in ("head", "body")}
    live = set()
    ready = {"sent": False}
    initial = {"head": a["headers"], "body": a["bodies"]}

    class C:
        __slots__ = ("s", "kind", "t0", "tc", "sent", "dead", "first")

    def schedule(c, when, what="send"):
        seq[0] += 1
        heapq.heappush(heap, (when, seq[0], c, what))

    def open_one(kind, first=False):
        st = stats[kind]
        if sum(s["opened"] for s in stats.values()) >= max_opened:
            return
        s = socket.socket()
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = C()
        c.s, c.kind, c.t0, c.tc, c.sent, c.dead, c.first = s, kind, now(), None, 0, False, first
        st["opened"] += 1
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            st["connect_failed"] += 1
            s.close()
            return
        sel.register(s, selectors.EVENT_WRITE, c)
        live.add(c)
        schedule(c, c.t0 + 5.0, "connect")

    def cut(c, how):
        if c.dead:
            return
        c.dead = True
        st = stats[c.kind]
        if c.tc is None:
            st["connect_failed"] += 1
        else:
            st["cut"] += 1
            st["how"][how] = st["how"].get(how, 0) + 1
            st["cut_after"].append(round(now() - c.tc, 3))
            if c.first:
                st["first_cut_after"].append(round(now() - c.tc, 3))
        try:
            sel.unregister(c.s)
        except (KeyError, ValueError):
            pass
        c.s.close()
        live.discard(c)
        if RECONNECT_CHILD and now() < end - 0.5:
            open_one(c.kind)

    def send(c, data):
        try:
            n = c.s.send(data)
            stats[c.kind]["bytes_sent"] += n
            return True
        except BlockingIOError:
            return True
        except OSError as e:
            cut(c, errno.errorcode.get(e.errno, "error"))
            return False

    def trickle(c):
        if c.dead or c.tc is None:
            return
        if c.kind == "head":
            b = head_prefix[c.sent:c.sent + 1] if c.sent < len(head_prefix) else b"a"
        else:
            b = b"a"
        if send(c, b):
            c.sent += 1
            schedule(c, now() + interval)

    RECONNECT_CHILD = a["reconnect"]
    for kind in ("head", "body"):
        for _ in range(initial[kind]):
            open_one(kind, first=True)
    t_start = now()
    while now() < end:
        timeout = 0.05
        if heap:
            timeout = max(0.0, min(timeout, heap[0][0] - now()))
        for key, ev in sel.select(timeout):
            c = key.data
            if c.dead:
                continue
            if c.tc is None:
                err = c.s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    cut(c, "connect:" + errno.errorcode.get(err, str(err)))
                    continue
                c.tc = now()
                stats[c.kind]["connected"] += 1
                sel.modify(c.s, selectors.EVENT_READ, c)
                if c.kind == "head":
                    if send(c, head_prefix[:1]):
                        c.sent = 1
                        schedule(c, c.tc + interval * random.uniform(0.5, 1.0))
                else:
                    if send(c, body_head):
                        schedule(c, c.tc + interval * random.uniform(0.5, 1.0))
                continue
            try:
                data = c.s.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                cut(c, errno.errorcode.get(e.errno, "error"))
                continue
            if not data:
                cut(c, "close")
            elif data.startswith(b"HTTP/1."):
                cut(c, data[9:12].decode(errors="replace"))
            else:
                cut(c, "data")
        t = now()
        while heap and heap[0][0] <= t:
            _, _, c, what = heapq.heappop(heap)
            if c.dead:
                continue
            if what == "connect":
                if c.tc is None:
                    cut(c, "connect-timeout")
                continue
            trickle(c)
        if not ready["sent"]:
            conn = sum(s["connected"] for s in stats.values())
            if conn >= a["headers"] + a["bodies"] or t - t_start > 5:
                write_json(a["ready"], {"t": t, "connected": conn})
                ready["sent"] = True
    for c in list(live):
        if c.tc is not None and not c.dead:
            stats[c.kind]["open_at_end"] += 1
        c.s.close()
    write_json(a["out"], stats)


def child_flood(a):
    """`count` silent connections opened as fast as possible from `src`, held
    until `close_at`; snapshot of their fate at `snapshot_at`."""
    raise_nofile()
    port, src = a["port"], a["src"]
    sel = selectors.DefaultSelector()
    recs = []  # [t_start, t_connected, t_closed, how, sock]
    start_at, snap_at, close_at = a["start_at"], a["snapshot_at"], a["close_at"]
    while now() < start_at:
        time.sleep(min(0.01, start_at - now()))
    opened = 0
    snapshot = None
    t_all_opened = None

    def closed(r, how):
        r[2], r[3] = now(), how
        try:
            sel.unregister(r[4])
        except (KeyError, ValueError):
            pass
        r[4].close()

    def pump(timeout):
        for key, ev in sel.select(timeout):
            r = key.data
            if r[2] is not None:
                continue
            if r[1] is None:
                err = r[4].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    closed(r, "connect:" + errno.errorcode.get(err, str(err)))
                    continue
                r[1] = now()
                sel.modify(r[4], selectors.EVENT_READ, r)
                continue
            try:
                data = r[4].recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                closed(r, errno.errorcode.get(e.errno, "error"))
                continue
            if not data:
                closed(r, "close")
            elif data.startswith(b"HTTP/1."):
                closed(r, data[9:12].decode(errors="replace"))
            else:
                closed(r, "data")

    while now() < close_at:
        if opened < a["count"] and now() < snap_at:
            for _ in range(min(200, a["count"] - opened)):
                s = socket.socket()
                s.setblocking(False)
                s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                r = [now(), None, None, None, s]
                recs.append(r)
                opened += 1
                try:
                    s.bind((src, 0))
                    err = s.connect_ex(("127.0.0.1", port))
                except OSError as e:
                    err = e.errno
                if err not in (0, errno.EINPROGRESS):
                    r[2], r[3] = now(), "connect:" + errno.errorcode.get(err, str(err))
                    s.close()
                    continue
                sel.register(s, selectors.EVENT_WRITE, r)
            pump(0)
            if opened == a["count"]:
                t_all_opened = now()
            continue
        if snapshot is None and now() >= snap_at:
            snapshot = summarize_flood(recs, now())
        pump(max(0.0, min(0.05, (snap_at if snapshot is None else close_at) - now())))
    if snapshot is None:
        snapshot = summarize_flood(recs, now())
    t_close = now()
    for r in recs:
        if r[2] is None:
            r[4].close()
    write_json(a["out"], {"snapshot": snapshot, "t_close_start": t_close, "t_close_done": now(),
                          "opened": opened, "open_seconds": (t_all_opened or now()) - start_at})


def summarize_flood(recs, t):
    s = {"open": 0, "connect_pending": 0, "connect_failed": 0, "closed_at_once": 0, "closed_later": 0,
         "answered": {}, "closed_how": {}, "close_after": []}
    for t0, tc, tx, how, _ in recs:
        if tx is None:
            s["open" if tc is not None else "connect_pending"] += 1
        elif tc is None:
            s["connect_failed"] += 1
            s["closed_how"][how] = s["closed_how"].get(how, 0) + 1
        else:
            if how.isdigit():
                s["answered"][how] = s["answered"].get(how, 0) + 1
            s["closed_how"][how] = s["closed_how"].get(how, 0) + 1
            s["closed_at_once" if tx - tc < 1.0 else "closed_later"] += 1
            s["close_after"].append(round(tx - tc, 3))
    return s


def child_probe(a):
    """A request every `interval` s on a fresh connection, from start_at to
    end_at; each is bounded by `timeout`."""
    results, lock, threads = [], threading.Lock(), []

    def one(t):
        ok, lat, detail = http_get(a["port"], timeout=a["timeout"])
        with lock:
            results.append([t, lat, ok, detail])

    t = a["start_at"]
    while t < a["end_at"]:
        d = t - now()
        if d > 0:
            time.sleep(d)
        th = threading.Thread(target=one, args=(now(),), daemon=True)
        th.start()
        threads.append(th)
        t += a["interval"]
    for th in threads:
        th.join(timeout=a["timeout"] + 1)
    with lock:
        write_json(a["out"], sorted(results))


def child_bigheads(a):
    """`count` connections each sending a head of `size` bytes without its
    final blank line; held until the parent writes `release`."""
    raise_nofile()
    fields, i = [b"GET /1k.bin HTTP/1.1\r\nHost: x\r\n"], 0
    while sum(map(len, fields)) < a["size"] - 1100:
        fields.append(b"X-Fill-%02d: " % i + b"b" * 1000 + b"\r\n")
        i += 1
    rest = a["size"] - sum(map(len, fields))
    fields.append(b"X-Last: " + b"c" * max(1, rest - 8))  # no CRLF, no blank line: never finished
    head = b"".join(fields)
    socks, failed = [], {}
    end = now() + a["open_seconds"]
    for k in range(a["count"]):
        if now() > end:
            failed["open-deadline"] = a["count"] - k
            break
        s = None
        try:
            s = socket.socket()
            s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((a["src"], 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", a["port"]))
            s.sendall(head)
            socks.append(s)
        except OSError as e:
            n = errno.errorcode.get(e.errno, str(e)) if e.errno else type(e).__name__
            failed[n] = failed.get(n, 0) + 1
            if s is not None:
                s.close()
    write_json(a["ready"], {"sent": len(socks), "failed": failed, "head_bytes": len(head)})
    wait_until = now() + a["hold_max"]
    while not os.path.exists(a["release"]) and now() < wait_until:
        time.sleep(0.05)
    closed = {}
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(64)
            how = data[9:12].decode(errors="replace") if data.startswith(b"HTTP/1.") else ("close" if not data else "data")
            closed[how] = closed.get(how, 0) + 1
        except BlockingIOError:
            pass
        except OSError as e:
            n = errno.errorcode.get(e.errno, "error")
            closed[n] = closed.get(n, 0) + 1
        s.close()
    write_json(a["out"], {"sent": len(socks), "failed": failed, "closed_by_server": closed, "head_bytes": len(head)})


def child_slowhead(a):
    """One connection: a head of `size` bytes, one byte per send (TCP_NODELAY,
    busy-wait `pause_ns` between sends), then the response."""
    size, pause = a["size"], int(a["pause_ns"])
    lines, i = [b"GET /1k.bin HTTP/1.1\r\n", b"Host: x\r\n"], 0
    field = a["field"]
    while sum(map(len, lines)) < size - field - 100:
        lines.append(b"X-Fill-%02d: " % i + b"d" * field + b"\r\n")
        i += 1
    rest = size - sum(map(len, lines)) - 2 - 2  # the field's CRLF and the blank line
    lines.append(b"X-Last: " + b"e" * (rest - 8) + b"\r\n\r\n")
    head = b"".join(lines)
    assert len(head) == size, (len(head), size)
    s = socket.create_connection(("127.0.0.1", a["port"]), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    pc = time.perf_counter_ns
    for k in range(size):
        s.send(head[k:k + 1])
        until = pc() + pause
        while pc() < until:
            pass
    sent = time.perf_counter() - t0
    data = b""
    s.settimeout(10)
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    write_json(a["out"], {"status": data[9:12].decode(errors="replace") if data.startswith(b"HTTP/1.") else "none",
                          "send_seconds": sent, "fields": len(lines) - 2})


# ---------------------------------------------------------------- scenarios

def scenario_slowloris(ports, www, results):
    backend_port, xps_port, ng60_port, ng10_port = ports
    print(f"\n== slowloris: {TRICKLERS} header + {TRICKLERS} body tricklers, a byte every {TRICKLE_INTERVAL:g} s "
          f"for {TRICKLE_SECONDS:g} s (reconnect={RECONNECT}); wrk -t1 -c{CONNS} -d{DURATION}s through the proxy ==",
          flush=True)
    bd = os.path.join(WORK, "backend")
    backend = Server("backend", "nginx", backend_port)
    start(backend, nginx_conf(bd, backend_port, 19000, f"""
        root {www};
        location = /upload {{
            proxy_pass http://127.0.0.1:{backend_port}/1k.bin;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}""", extra_http="keepalive_requests 1000000; client_header_timeout 300s; client_body_timeout 300s; "
                          "client_body_buffer_size 128k;"))
    out = {"backend": "nginx, 1 worker, CPU 0 (shared with the proxy), /1k.bin and a body-buffering /upload"}
    try:
        servers = [("xps", xps_port, None)]
        for v in NGINX_VARIANTS:
            servers.append((f"nginx-{v}", ng60_port if v == "60s" else ng10_port, v))
        for name, port, variant in servers:
            srv = Server(f"slowloris-{name}", "xps" if variant is None else "nginx", port)
            if variant is None:
                conf = (f"workers 1;\n"
                        f"# defaults, written out: client_header_timeout 10s; client_body_timeout 10s;\n"
                        f"# send_timeout 30s; keepalive_timeout 75s; client_min_rate 240 5s; max_connections 10000;\n"
                        f"upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}\n"
                        f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass backend; }} }}\n")
                timeouts = "client_header_timeout 10s, client_body_timeout 10s, client_min_rate 240 5s (defaults)"
            else:
                t = variant
                timeouts = (f"client_header_timeout {t}, client_body_timeout {t}"
                            + (" (nginx defaults)" if t == "60s" else " (as xps)"))
                conf = nginx_conf(srv.dir, port, 10240, f"""
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}""", extra_http=f"client_header_timeout {t}; client_body_timeout {t}; "
                          f"send_timeout {'60s' if t == '60s' else '30s'}; keepalive_timeout 75s;\n"
                          f"    upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 64; }}")
            start(srv, conf)
            try:
                ok, _, st = http_get(port, "/1k.bin")
                if not ok:
                    raise RuntimeError(f"{name}: GET / through the proxy answered {st}")
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n"
                              + b"a" * 100000)
                    s.settimeout(5)
                    got = s.recv(100)
                if not got.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"{name}: a whole POST /upload answered {got[:40]!r}")
                wrk(port, 1 if QUICK else 2, "/1k.bin")  # warm-up
                c0 = cpu_usage(srv.pids())
                with ForeignCpu() as fq:
                    quiet = wrk(port, DURATION, "/1k.bin")
                c1 = cpu_usage(srv.pids())
                rss_quiet = rss_kib(srv.pids())
                backend_base = established_to(backend_port)
                ready = os.path.join(WORK, f"trickle-{name}.ready")
                res = os.path.join(WORK, f"trickle-{name}.json")
                for p in (ready, res):
                    if os.path.exists(p):
                        os.remove(p)
                seconds = max(TRICKLE_SECONDS, DURATION + 4)
                child = run_child("trickle", {"port": port, "headers": TRICKLERS, "bodies": TRICKLERS,
                                              "interval": TRICKLE_INTERVAL, "seconds": seconds,
                                              "reconnect": bool(RECONNECT), "max_opened": TRICKLERS * 2 * 50,
                                              "ready": ready, "out": res})
                try:
                    r = wait_file(ready, 15)
                    time.sleep(0.5)
                    held = socket_fds(srv.pids())
                    backend_held = established_to(backend_port)
                    c2 = cpu_usage(srv.pids())
                    with ForeignCpu() as fa:
                        attack = wrk(port, DURATION, "/1k.bin")
                    c3 = cpu_usage(srv.pids())
                    rss_attack = rss_kib(srv.pids())
                    child.wait(timeout=seconds + 30)
                finally:
                    if child.poll() is None:
                        child.kill()
                        child.wait()
                tr = wait_file(res, 5)
                with ForeignCpu() as fz:  # quiet again: the reference is the mean of before and after
                    after = wrk(port, DURATION, "/1k.bin")
                alive_after = srv.up()
                ref = statistics.mean([quiet["rps"], after["rps"]]) if quiet["rps"] and after["rps"] else None
                nlines, nbytes, tail = srv.log_tail()
                row = {"timeouts": timeouts, "quiet": {k: v for k, v in quiet.items() if k != "raw"},
                       "attack": {k: v for k, v in attack.items() if k != "raw"},
                       "quiet_after": {k: v for k, v in after.items() if k != "raw"}, "quiet_rps": ref,
                       "foreign_cpus": {"quiet": fq.foreign, "attack": fa.foreign, "after": fz.foreign},
                       "attack_pct": 100.0 * attack["rps"] / ref if ref and attack["rps"] else None,
                       "cpu_us_per_req_quiet": (c1[0] - c0[0]) / quiet["requests"] if quiet["requests"] else None,
                       "cpu_us_per_req_attack": (c3[0] - c2[0]) / attack["requests"] if attack["requests"] else None,
                       "rss_kib_quiet": rss_quiet, "rss_kib_attack": rss_attack,
                       "server_sockets_when_ready": held, "tricklers_connected_when_ready": r["connected"],
                       "backend_conns_quiet": backend_base, "backend_conns_attack": backend_held,
                       "tricklers": tr, "server_up": alive_after, "log_lines": nlines, "log_bytes": nbytes,
                       "log_tail": tail, "trickle_seconds": seconds}
                out[name] = row
                for k in ("head", "body"):
                    t = tr[k]
                    print(f"  {name:10s} {k}: opened {t['opened']}, cut {t['cut']} {t['how']}, "
                          f"cut after median {fmt(pct(t['cut_after'], 50), '{:.2f}')} s max "
                          f"{fmt(max(t['cut_after']) if t['cut_after'] else None, '{:.2f}')} s, "
                          f"open at end {t['open_at_end']}", flush=True)
                print(f"  {name:10s} quiet {quiet['rps']} req/s (p99 {quiet['p99_ms']} ms), after {after['rps']} req/s, under attack "
                      f"{attack['rps']} req/s (p99 {attack['p99_ms']} ms) = {fmt(row['attack_pct'])}% "
                      f"[other processes' load: {fq.foreign:.2f}/{fa.foreign:.2f}/{fz.foreign:.2f} CPUs] "
                      f"{attack['socket_errors']} {'non-2xx=%d' % attack['non2xx'] if attack['non2xx'] else ''}; "
                      f"server up: {alive_after}", flush=True)
            finally:
                stop(srv)
    finally:
        stop(backend)
    results["slowloris"] = out


def scenario_flood(ports, www, results):
    xps_port, ng_port = ports
    nf = nofile_limit()
    per_child = max(1, min(10000, nf - 500))
    nchildren = (FLOOD + per_child - 1) // per_child
    print(f"\n== connection flood: {FLOOD} silent connections ({nchildren} client processes) held "
          f"{FLOOD_HOLD:g} s; probe every {PROBE_INTERVAL * 1000:.0f} ms (timeout {PROBE_TIMEOUT:g} s); "
          f"max_connections / worker_connections {FLOOD_MAX_CONNS}; fd limit {nf} ==", flush=True)
    out = {"fd_limit": nf}
    for name, port in (("xps", xps_port), ("nginx", ng_port)):
        srv = Server(f"flood-{name}", "xps" if name == "xps" else "nginx", port)
        if name == "xps":
            conf = (f"workers 1;\nmax_connections {FLOOD_MAX_CONNS};\n"
                    f"# client_header_timeout 10s (default)\n"
                    f"server {{ listen 127.0.0.1:{port}; root {www}; }}\n")
        else:
            conf = nginx_conf(srv.dir, port, FLOOD_MAX_CONNS, f"        root {www};",
                              extra_http="client_header_timeout 10s; client_body_timeout 10s; send_timeout 30s; "
                                         "keepalive_timeout 75s;")
        start(srv, conf)
        kids = []
        try:
            for _ in range(3):
                http_get(port)
            base_sockets = socket_fds(srv.pids())
            rss0 = rss_kib(srv.pids())
            t = now()
            flood_start = t + 1.5
            snapshot_at = flood_start + FLOOD_HOLD - 0.5
            close_at = flood_start + FLOOD_HOLD
            probe_out = os.path.join(WORK, f"probe-{name}.json")
            kids.append(run_child("probe", {"port": port, "interval": PROBE_INTERVAL, "timeout": PROBE_TIMEOUT,
                                            "start_at": t + 0.3, "end_at": close_at + RECOVERY_SECONDS,
                                            "out": probe_out}))
            flood_outs = []
            for i in range(nchildren):
                n = min(per_child, FLOOD - i * per_child)
                o = os.path.join(WORK, f"flood-{name}-{i}.json")
                if os.path.exists(o):
                    os.remove(o)
                flood_outs.append(o)
                kids.append(run_child("flood", {"port": port, "count": n, "src": f"127.0.{10 + i}.{2 + (name == 'nginx')}",
                                                "start_at": flood_start, "snapshot_at": snapshot_at,
                                                "close_at": close_at, "out": o}))
            fcpu = ForeignCpu().__enter__()
            while now() < snapshot_at:
                time.sleep(min(0.05, snapshot_at - now()))
            fcpu.__exit__(None, None, None)
            server_sockets = socket_fds(srv.pids()) - base_sockets
            backlog = accept_queue(port)
            rss_flood = rss_kib(srv.pids())
            up_during = srv.up()
            while now() < close_at:
                time.sleep(min(0.01, max(0.0, close_at - now())))
            # Recovery: a request every 20 ms from the close on, until one succeeds.
            recovery, tries, last = None, 0, None
            end = close_at + RECOVERY_SECONDS
            while now() < end:
                tries += 1
                ok, lat, detail = http_get(port, timeout=min(1.0, max(0.1, end - now())))
                if ok:
                    recovery = now() - close_at
                    break
                last = detail
                time.sleep(0.02)
            for k in kids:
                k.wait(timeout=RECOVERY_SECONDS + 30)
            floods = [wait_file(o, 5) for o in flood_outs]
            probes = wait_file(probe_out, 5)
            up_after = srv.up()
            nlines, nbytes, tail = srv.log_tail()
        finally:
            for k in kids:
                if k.poll() is None:
                    k.kill()
                    k.wait()
            stop(srv)
        snap = {}
        for f in floods:
            for k, v in f["snapshot"].items():
                if isinstance(v, int):
                    snap[k] = snap.get(k, 0) + v
                elif isinstance(v, dict):
                    d = snap.setdefault(k, {})
                    for kk, vv in v.items():
                        d[kk] = d.get(kk, 0) + vv
                else:
                    snap.setdefault(k, []).extend(v)
        during = [p for p in probes if flood_start <= p[0] < close_at]
        before = [p for p in probes if p[0] < flood_start]
        after = [p for p in probes if p[0] >= close_at]
        ok_lat = [p[1] * 1000 for p in during if p[2]]
        fails = {}
        for p in during:
            if not p[2]:
                fails[p[3]] = fails.get(p[3], 0) + 1
        row = {"server_up": up_during and up_after, "snapshot": {k: v for k, v in snap.items() if k != "close_after"},
               "close_after_median_s": pct(snap.get("close_after", []), 50),
               "server_sockets_held": server_sockets, "accept_queue": backlog,
               "rss_kib_before": rss0, "rss_kib_flood": rss_flood,
               "open_seconds": max(f["open_seconds"] for f in floods),
               "probes_before": len(before), "probes_before_ok": sum(1 for p in before if p[2]),
               "probes_during": len(during), "probes_during_ok": len(ok_lat),
               "probe_success_pct": 100.0 * len(ok_lat) / len(during) if during else None,
               "probe_p50_ms": pct(ok_lat, 50), "probe_p99_ms": pct(ok_lat, 99), "probe_failures": fails,
               "probes_after_ok_pct": 100.0 * sum(1 for p in after if p[2]) / len(after) if after else None,
               "recovery_ms": recovery * 1000 if recovery is not None else None, "recovery_tries": tries,
               "recovery_last_failure": last, "foreign_cpus": fcpu.foreign, "log_lines": nlines, "log_bytes": nbytes, "log_tail": tail}
        out[name] = row
        s = row["snapshot"]
        print(f"  {name:6s} up={row['server_up']} opened in {row['open_seconds']:.1f} s; at {FLOOD_HOLD - 0.5:g} s: "
              f"open {s.get('open', 0)} (server holds {server_sockets}, accept queue {backlog}), "
              f"connect pending {s.get('connect_pending', 0)}, failed {s.get('connect_failed', 0)}, "
              f"closed <1s {s.get('closed_at_once', 0)}, later {s.get('closed_later', 0)} {s.get('closed_how', {})}",
              flush=True)
        print(f"  {name:6s} probe during flood: {len(ok_lat)}/{len(during)} ok ({fmt(row['probe_success_pct'])}%), "
              f"p50 {fmt(row['probe_p50_ms'], '{:.2f}')} ms p99 {fmt(row['probe_p99_ms'], '{:.2f}')} ms, "
              f"failures {fails}; recovery {fmt(row['recovery_ms'], '{:.0f}')} ms", flush=True)
    results["flood"] = out


def scenario_bigheads(ports, www, results):
    xps_port, ng_port = ports
    maxc = BIGHEADS + 1000
    print(f"\n== big heads: {BIGHEADS} connections each holding a {BIGHEAD_KIB} KiB unfinished head "
          f"(xps client_header_max_size 16k; nginx large_client_header_buffers 4 16k), {BIGHEAD_ROUNDS} round(s) ==",
          flush=True)
    out = {}
    for name, port in (("xps", xps_port), ("nginx", ng_port)):
        srv = Server(f"bigheads-{name}", "xps" if name == "xps" else "nginx", port)
        if name == "xps":
            conf = (f"workers 1;\nmax_connections {maxc};\nclient_header_max_size 16k;\n"
                    f"client_header_timeout 60s;\n"
                    f"server {{ listen 127.0.0.1:{port}; root {www}; }}\n")
        else:
            conf = nginx_conf(srv.dir, port, maxc, f"        root {www};",
                              extra_http="client_header_timeout 60s; client_body_timeout 60s; "
                                         "large_client_header_buffers 4 16k;")
        start(srv, conf)
        rounds = []
        try:
            for _ in range(3):
                http_get(port)
            for rnd in range(BIGHEAD_ROUNDS):
                time.sleep(0.5)
                before = rss_kib(srv.pids())
                ready = os.path.join(WORK, f"big-{name}-{rnd}.ready")
                release = os.path.join(WORK, f"big-{name}-{rnd}.release")
                res = os.path.join(WORK, f"big-{name}-{rnd}.json")
                for p in (ready, release, res):
                    if os.path.exists(p):
                        os.remove(p)
                child = run_child("bigheads", {"port": port, "count": BIGHEADS, "size": BIGHEAD_KIB * 1024,
                                               "src": f"127.0.{20 + rnd}.{2 + (name == 'nginx')}",
                                               "open_seconds": 40, "hold_max": 30, "ready": ready,
                                               "release": release, "out": res})
                try:
                    r = wait_file(ready, 60)
                    time.sleep(1.0)
                    held_rss = rss_kib(srv.pids())
                    held_sockets = socket_fds(srv.pids())
                    probes = [http_get(port) for _ in range(5)]
                    probe_ok = all(p[0] for p in probes)
                    probe_lat = statistics.median(p[1] for p in probes)
                    write_json(release, {})
                    child.wait(timeout=60)
                finally:
                    if child.poll() is None:
                        child.kill()
                        child.wait()
                b = wait_file(res, 5)
                time.sleep(1.0)
                after = rss_kib(srv.pids())
                n = b["sent"]
                rounds.append({"rss_kib_before": before, "rss_kib_held": held_rss, "rss_kib_after_close": after,
                               "sent": n, "failed": b["failed"], "closed_by_server": b["closed_by_server"],
                               "head_bytes": b["head_bytes"], "server_sockets": held_sockets,
                               "kib_per_conn": (held_rss - before) / n if n else None,
                               "probe_ok_while_held": probe_ok, "probe_ms": probe_lat * 1000})
                print(f"  {name:6s} round {rnd + 1}: {n} held ({b['head_bytes']} B heads, failed {b['failed']}, "
                      f"closed by server {b['closed_by_server']}); RSS {before / 1024:.1f} -> {held_rss / 1024:.1f} MiB "
                      f"= {fmt(rounds[-1]['kib_per_conn'], '{:.2f}')} KiB/conn; after close {after / 1024:.1f} MiB; "
                      f"probe ok={probe_ok} {probe_lat * 1000:.1f} ms", flush=True)
            up = srv.up()
        finally:
            stop(srv)
        out[name] = {"rounds": rounds, "server_up": up,
                     "bound_kib_per_conn": 16 if name == "xps" else 1 + 4 * 16,
                     "bound_note": "client_header_max_size" if name == "xps"
                     else "client_header_buffer_size 1k + large_client_header_buffers 4 16k"}
    results["bigheads"] = out


def scenario_slowhead(ports, www, results):
    xps_port, ng_port = ports
    print(f"\n== slow head: one connection, heads of {', '.join(f'{s} KiB' for s in SLOWHEAD_SIZES)} one byte per send "
          f"(TCP_NODELAY, {SLOWHEAD_PAUSE_US:g} µs busy-wait), {SLOWHEAD_REPEAT} run(s) each ==", flush=True)
    out = {}
    names = [("xps", xps_port)] + ([("nginx", ng_port)] if SLOWHEAD_NGINX else [])
    for name, port in names:
        srv = Server(f"slowhead-{name}", "xps" if name == "xps" else "nginx", port)
        limit = max(128, 2 * max(SLOWHEAD_SIZES))  # KiB: room for the largest head
        if name == "xps":
            conf = (f"workers 1;\nclient_header_max_size {limit}k;\nclient_header_timeout 600s;\nclient_min_rate off;\n"
                    f"server {{ listen 127.0.0.1:{port}; root {www}; }}\n")
        else:
            conf = nginx_conf(srv.dir, port, 1024, f"        root {www};",
                              extra_http=f"client_header_timeout 600s; large_client_header_buffers 4 {limit}k;")
        start(srv, conf)
        rows = {}
        try:
            for _ in range(3):
                http_get(port)
            # the fixed cost of one request with a small head, for reference
            c0 = cpu_usage(srv.pids())
            for _ in range(20):
                http_get(port)
            c1 = cpu_usage(srv.pids())
            fixed_us = (c1[1] - c0[1]) / 1000 / 20
            runs_by = {size: [] for size in SLOWHEAD_SIZES}
            fcpu = ForeignCpu().__enter__()
            for rep in range(SLOWHEAD_REPEAT):  # sizes interleaved, so drift touches them alike
                for size in SLOWHEAD_SIZES:
                    runs = runs_by[size]
                    res = os.path.join(WORK, f"slow-{name}-{size}-{rep}.json")
                    if os.path.exists(res):
                        os.remove(res)
                    c0 = cpu_usage(srv.pids())
                    child = run_child("slowhead", {"port": port, "size": size * 1024,
                                                   "pause_ns": SLOWHEAD_PAUSE_US * 1000, "field": SLOWHEAD_FIELD, "out": res})
                    try:
                        child.wait(timeout=size * 1024 * (SLOWHEAD_PAUSE_US + 100) / 1e6 + 60)
                    finally:
                        if child.poll() is None:
                            child.kill()
                            child.wait()
                    time.sleep(0.1)
                    c1 = cpu_usage(srv.pids())
                    r = wait_file(res, 5)
                    runs.append({"status": r["status"], "send_seconds": r["send_seconds"],
                                 "cpu_us_stat": c1[0] - c0[0], "cpu_us_sched": (c1[1] - c0[1]) / 1000})
            fcpu.__exit__(None, None, None)
            for size in SLOWHEAD_SIZES:
                runs = runs_by[size]
                stat = statistics.median(x["cpu_us_stat"] for x in runs)
                sched = statistics.median(x["cpu_us_sched"] for x in runs)
                rows[size] = {"runs": runs, "cpu_us_stat": stat, "cpu_us_sched": sched,
                              "us_per_kib_stat": stat / size, "us_per_kib_sched": sched / size,
                              "statuses": sorted({x["status"] for x in runs})}
                print(f"  {name:6s} {size:3d} KiB: status {rows[size]['statuses']}, sent in "
                      f"{statistics.median(x['send_seconds'] for x in runs):.2f} s; server CPU utime+stime "
                      f"{stat / 1000:.0f} ms = {stat / size:.0f} µs/KiB; schedstat {sched / 1000:.1f} ms = "
                      f"{sched / size:.0f} µs/KiB", flush=True)
            up = srv.up()
        finally:
            stop(srv)
        print(f"  {name:6s} for reference, one small request on a fresh connection: {fixed_us:.0f} µs of server CPU",
              flush=True)
        out[name] = {"sizes": rows, "fixed_request_us": fixed_us, "server_up": up, "foreign_cpus": fcpu.foreign}
    results["slowhead"] = out


# ---------------------------------------------------------------- the table

def table(results):
    lines = []

    def row(scn, metric, vals, ratio=""):
        lines.append((scn, metric, vals, ratio))

    def ratio(a, b, spec="{:.2f}x"):
        return spec.format(a / b) if a is not None and b not in (None, 0) else ""

    out = ["", "== results =="]
    if "slowloris" in results:
        sl = results["slowloris"]
        names = [n for n in ["xps"] + [f"nginx-{v}" for v in NGINX_VARIANTS] if n in sl]
        out.append("")
        out.append(f"slowloris (proxied 1 KiB; {TRICKLERS} header + {TRICKLERS} body tricklers, 1 B/{TRICKLE_INTERVAL:g} s, "
                   f"{'reconnecting' if RECONNECT else 'not reconnecting'}; phase {max(TRICKLE_SECONDS, DURATION + 4):g} s; wrk -t1 -c{CONNS} -d{DURATION}s)")
        hdr = f"{'metric':38s}" + "".join(f"{n:>16s}" for n in names) + "".join(f"{'xps/' + n:>16s}" for n in names[1:])
        out.append(hdr)

        def line(metric, get, spec, ratio_ok=True):
            vals = [get(sl[n]) for n in names]
            s = f"{metric:38s}" + "".join(f"{fmt(v, spec):>16s}" for v in vals)
            if ratio_ok:
                s += "".join(f"{ratio(vals[0], v):>16s}" for v in vals[1:])
            out.append(s)

        line("quiet req/s, before", lambda r: r["quiet"]["rps"], "{:.0f}")
        line("quiet req/s, after", lambda r: r["quiet_after"]["rps"], "{:.0f}")
        line("under attack req/s", lambda r: r["attack"]["rps"], "{:.0f}")
        line("under attack, % of quiet (mean)", lambda r: r["attack_pct"], "{:.1f}%")
        line("other processes' CPUs, quiet before", lambda r: r["foreign_cpus"]["quiet"], "{:.2f}", False)
        line("  under attack", lambda r: r["foreign_cpus"]["attack"], "{:.2f}", False)
        line("  quiet after", lambda r: r["foreign_cpus"]["after"], "{:.2f}", False)
        line("p99 quiet ms", lambda r: r["quiet"]["p99_ms"], "{:.2f}")
        line("p99 under attack ms", lambda r: r["attack"]["p99_ms"], "{:.2f}")
        line("server CPU µs/req quiet", lambda r: r["cpu_us_per_req_quiet"], "{:.1f}")
        line("server CPU µs/req under attack", lambda r: r["cpu_us_per_req_attack"], "{:.1f}")
        line("RSS MiB quiet", lambda r: r["rss_kib_quiet"] / 1024, "{:.1f}")
        line("RSS MiB under attack", lambda r: r["rss_kib_attack"] / 1024, "{:.1f}")
        line("server sockets, attack set up", lambda r: r["server_sockets_when_ready"], "{:d}", False)
        line("backend connections, after quiet", lambda r: r["backend_conns_quiet"], "{:d}", False)
        line("backend connections, attack set up", lambda r: r["backend_conns_attack"], "{:d}", False)
        for k, label in (("head", "header"), ("body", "body")):
            line(f"{label} tricklers opened", lambda r: r["tricklers"][k]["opened"], "{:d}", False)
            line(f"{label} tricklers cut by server", lambda r: r["tricklers"][k]["cut"], "{:d}", False)
            line(f"  of the first {TRICKLERS}", lambda r: len(r["tricklers"][k]["first_cut_after"]), "{:d}", False)
            line(f"  how (status / close)", lambda r: None, "", False)
            out[-1] = f"{'  how (status / close)':38s}" + "".join(
                " " + f"{','.join(f'{h}:{c}' for h, c in sorted(sl[n]['tricklers'][k]['how'].items())) or '–':>15s}"
                for n in names)
            line(f"  cut after s, median", lambda r: pct(r["tricklers"][k]["cut_after"], 50), "{:.2f}", False)
            line(f"  cut after s, max", lambda r: max(r["tricklers"][k]["cut_after"], default=None), "{:.2f}", False)
            line(f"  still open at the end", lambda r: r["tricklers"][k]["open_at_end"], "{:d}", False)
        out.append(f"{'server up after':38s}" + "".join(f"{str(sl[n]['server_up']):>16s}" for n in names))
        if "xps" in sl and sl["xps"]["attack_pct"] is not None:
            out.append(f"  xps target: under attack >= 90% of quiet: "
                       f"{'met' if sl['xps']['attack_pct'] >= 90 else 'NOT met'} ({sl['xps']['attack_pct']:.1f}%)")
        for n in names:
            out.append(f"  {n}: {sl[n]['timeouts']}")
    if "flood" in results:
        fl = results["flood"]
        names = [n for n in ("xps", "nginx") if n in fl]
        out.append("")
        out.append(f"connection flood ({FLOOD} silent connections held {FLOOD_HOLD:g} s; "
                   f"max_connections/worker_connections {FLOOD_MAX_CONNS}; fd limit {fl['fd_limit']}; "
                   f"probe every {PROBE_INTERVAL * 1000:.0f} ms)")
        out.append(f"{'metric':38s}" + "".join(f"{n:>16s}" for n in names) + f"{'xps/nginx':>16s}")

        def fline(metric, get, spec, r=True):
            vals = [get(fl[n]) for n in names]
            out.append(f"{metric:38s}" + "".join(f"{fmt(v, spec):>16s}" for v in vals)
                       + (f"{ratio(vals[0], vals[1]):>16s}" if r and len(vals) == 2 else ""))

        out.append(f"{'server stayed up':38s}" + "".join(f"{str(fl[n]['server_up']):>16s}" for n in names))
        fline("seconds to issue the connects", lambda r: r["open_seconds"], "{:.1f}", False)
        fline("open (client view)", lambda r: r["snapshot"].get("open", 0), "{:d}", False)
        fline("  held by the server (sockets)", lambda r: r["server_sockets_held"], "{:d}", False)
        fline("  in the accept queue", lambda r: r["accept_queue"], "{:d}", False)
        fline("connect still pending (SYN dropped)", lambda r: r["snapshot"].get("connect_pending", 0), "{:d}", False)
        fline("connect failed", lambda r: r["snapshot"].get("connect_failed", 0), "{:d}", False)
        fline("closed by server < 1 s", lambda r: r["snapshot"].get("closed_at_once", 0), "{:d}", False)
        fline("closed by server later", lambda r: r["snapshot"].get("closed_later", 0), "{:d}", False)
        out.append(f"{'  how':38s}" + "".join(
            " " + f"{','.join(f'{h}:{c}' for h, c in sorted(fl[n]['snapshot'].get('closed_how', {}).items())) or '–':>15s}"
            for n in names))
        fline("probe success during flood %", lambda r: r["probe_success_pct"], "{:.1f}")
        fline("probe p50 ms (successes)", lambda r: r["probe_p50_ms"], "{:.2f}")
        fline("probe p99 ms (successes)", lambda r: r["probe_p99_ms"], "{:.2f}")
        out.append(f"{'  probe failures':38s}" + "".join(
            " " + f"{','.join(f'{h}:{c}' for h, c in sorted(fl[n]['probe_failures'].items())) or '–':>15s}"
            for n in names))
        fline("recovery after close ms", lambda r: r["recovery_ms"], "{:.0f}", False)
        fline("probe success after close %", lambda r: r["probes_after_ok_pct"], "{:.1f}", False)
        fline("RSS MiB during flood", lambda r: r["rss_kib_flood"] / 1024, "{:.1f}")
        fline("error-log lines", lambda r: r["log_lines"], "{:d}", False)
        fline("other processes' CPUs during flood", lambda r: r["foreign_cpus"], "{:.2f}", False)
    if "bigheads" in results:
        bh = results["bigheads"]
        names = [n for n in ("xps", "nginx") if n in bh]
        out.append("")
        out.append(f"big heads ({BIGHEADS} connections × {BIGHEAD_KIB} KiB unfinished head; round 1 on a fresh server, "
                   f"then {BIGHEAD_ROUNDS - 1} more on the same server)")
        out.append(f"{'metric':38s}" + "".join(f"{n:>16s}" for n in names) + f"{'xps/nginx':>16s}")

        def bline(metric, get, spec, r=True):
            vals = [get(bh[n]) for n in names]
            out.append(f"{metric:38s}" + "".join(f"{fmt(v, spec):>16s}" for v in vals)
                       + (f"{ratio(vals[0], vals[1]):>16s}" if r and len(vals) == 2 else ""))

        first = lambda r: r["rounds"][0]
        last = lambda r: r["rounds"][-1]
        bline("connections held (round 1)", lambda r: first(r)["sent"], "{:d}", False)
        bline("closed by server while held", lambda r: sum(sum(x["closed_by_server"].values()) for x in r["rounds"]),
              "{:d}", False)
        bline("RSS MiB before (fresh server)", lambda r: first(r)["rss_kib_before"] / 1024, "{:.1f}")
        bline("RSS MiB with them held", lambda r: first(r)["rss_kib_held"] / 1024, "{:.1f}")
        bline("RSS KiB per connection", lambda r: first(r)["kib_per_conn"], "{:.2f}")
        bline("head-buffer bound KiB per connection", lambda r: r["bound_kib_per_conn"], "{:d}", False)
        bline("RSS MiB after they closed", lambda r: first(r)["rss_kib_after_close"] / 1024, "{:.1f}")
        if BIGHEAD_ROUNDS > 1:
            bline(f"held, rounds 1..{BIGHEAD_ROUNDS}: max-min MiB",
                  lambda r: (max(x["rss_kib_held"] for x in r["rounds"]) - min(x["rss_kib_held"] for x in r["rounds"])) / 1024,
                  "{:.1f}", False)
            def per_round(key):
                return "".join(" {:>15s}".format("/".join("%.0f" % (x[key] / 1024) for x in bh[n]["rounds"]))
                               for n in names)
            out.append(f"{'RSS MiB held, each round':38s}" + per_round("rss_kib_held"))
            out.append(f"{'RSS MiB after close, each round':38s}" + per_round("rss_kib_after_close"))
        bline("probe while held ms (median of 5)", lambda r: last(r)["probe_ms"], "{:.1f}")
    if "slowhead" in results:
        sh = results["slowhead"]
        names = [n for n in ("xps", "nginx") if n in sh]
        out.append("")
        out.append(f"slow head (1 byte per send, {SLOWHEAD_PAUSE_US:g} µs apart; server CPU per KiB of head, "
                   f"median of {SLOWHEAD_REPEAT})")
        out.append(f"{'metric':38s}" + "".join(f"{n:>16s}" for n in names) + (f"{'xps/nginx':>16s}" if len(names) == 2 else ""))
        for size in SLOWHEAD_SIZES:
            for key, label in (("us_per_kib_stat", "µs/KiB utime+stime"), ("us_per_kib_sched", "µs/KiB schedstat")):
                vals = [sh[n]["sizes"][size][key] for n in names]
                out.append(f"{f'{size} KiB {label}':38s}" + "".join(f"{v:>16.0f}" for v in vals)
                           + (f"{ratio(vals[0], vals[1]):>16s}" if len(vals) == 2 else ""))
        for key, label in (("us_per_kib_sched", "schedstat"),):
            vals = [sh[n]["sizes"][SLOWHEAD_SIZES[-1]][key] / sh[n]["sizes"][SLOWHEAD_SIZES[0]][key] for n in names]
            out.append(f"{f'per-KiB {SLOWHEAD_SIZES[-1]}K/{SLOWHEAD_SIZES[0]}K ({label})':38s}"
                       + "".join(f"{v:>16.2f}" for v in vals))
        out.append("{:38s}".format("other processes' CPUs meanwhile") + "".join(f"{sh[n]['foreign_cpus']:>16.2f}" for n in names))
        out.append(f"{'statuses':38s}" + "".join(
            f"{','.join(sorted({s for z in sh[n]['sizes'].values() for s in z['statuses']})):>16s}" for n in names))
    return "\n".join(out)


# ---------------------------------------------------------------- main

def main():
    for tool in (WRK, NGINX):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            raise SystemExit(f"{tool} is missing: apt-get install -y wrk nginx")
    if not os.access(XPS, os.X_OK):
        raise SystemExit(f"no {XPS}: set XPS= or build the release binary")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    pin_self(1)
    raise_nofile()
    shutil.rmtree(WORK, ignore_errors=True)  # only our own scratch folder
    os.makedirs(WORK, exist_ok=True)
    www = make_www()
    ports = free_ports(10, BASE_PORT)
    nginx_version = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    results = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "quick": QUICK, "xps": XPS, "nginx": nginx_version,
               "cpus": len(CPUS), "kernel": os.uname().release, "fd_hard_limit": nofile_limit(),
               "knobs": {k: globals()[k] for k in ("DURATION", "CONNS", "TRICKLERS", "TRICKLE_INTERVAL",
                                                    "TRICKLE_SECONDS", "RECONNECT", "NGINX_VARIANTS", "FLOOD",
                                                    "FLOOD_MAX_CONNS", "FLOOD_HOLD", "RECOVERY_SECONDS",
                                                    "PROBE_INTERVAL", "PROBE_TIMEOUT", "BIGHEADS", "BIGHEAD_KIB",
                                                    "BIGHEAD_ROUNDS", "SLOWHEAD_SIZES", "SLOWHEAD_REPEAT",
                                                    "SLOWHEAD_PAUSE_US", "SCENARIOS")}}
    print(f"== hostile clients: xps vs nginx ==\nmachine: {len(CPUS)} CPUs, {os.uname().release}; {nginx_version}; "
          f"xps {XPS}; servers on CPU {CPUS[0]}, clients on CPU {CPUS[-1]}; fd hard limit {nofile_limit()}"
          f"{'; QUICK' if QUICK else ''}", flush=True)
    t0 = now()
    results["loadavg"] = {}

    def load(tag):
        with open("/proc/loadavg") as f:
            results["loadavg"][tag] = la = f.read().split()[0]
        print(f"(load average {la} {tag})", flush=True)

    try:
        load("at start")
        if "slowloris" in SCENARIOS:
            scenario_slowloris(ports[0:4], www, results)
            load("after slowloris")
        if "flood" in SCENARIOS:
            scenario_flood(ports[4:6], www, results)
            load("after flood")
        if "bigheads" in SCENARIOS:
            scenario_bigheads(ports[6:8], www, results)
            load("after bigheads")
        if "slowhead" in SCENARIOS:
            scenario_slowhead(ports[8:10], www, results)
            load("after slowhead")
    finally:
        for s in list(STARTED):
            try:
                stop(s)
            except Exception as e:  # keep stopping the others
                print(f"stopping {s.name}: {e}", file=sys.stderr)
        results["seconds"] = now() - t0
        # results.json (results-quick.json) is the latest run; each run is also kept under its date
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kept = os.path.join(OUT, f"results{'-quick' if QUICK else ''}-{stamp}.json")
        with open(kept, "w") as f:
            json.dump(results, f, indent=1, default=str)
        path = os.path.join(OUT, "results-quick.json" if QUICK else "results.json")
        shutil.copyfile(kept, path)
    print(table(results))
    print(f"\n({now() - t0:.0f} s; JSON: {os.path.relpath(path, ROOT)})")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        role, args = sys.argv[2], json.loads(sys.argv[3])
        {"trickle": child_trickle, "flood": child_flood, "probe": child_probe,
         "bigheads": child_bigheads, "slowhead": child_slowhead}[role](args)
    else:
        main()
