"""Helpers the benchmark scripts share: waiting for a port to open, and
a process's CPU time and resident memory from /proc. Bounded: every wait
has a deadline."""
import socket
import sys
import time


def free_port():
    """A loopback port nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, deadline=10.0):
    """Returns once 127.0.0.1:port accepts a connection; exits after
    `deadline` seconds."""
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"port {port} did not open")


def cpu_split(pid):
    """(user, system) CPU ticks of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_ticks(*pids):
    """User and system CPU ticks of processes, together."""
    return sum(sum(cpu_split(p)) for p in pids)


def rss_kib(*pids):
    """Resident memory of processes, together, in KiB."""
    total = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total
