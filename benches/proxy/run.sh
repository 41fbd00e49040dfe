#!/usr/bin/env bash
# Reverse proxy: xps, nginx and HAProxy in front of the same backend, in one
# run.
#
#   cargo build --release && benches/proxy/run.sh
#
# The backend is an nginx serving a 1 KiB file and a 100 MiB file (with
# stub_status, to count the connections each proxy opens to it). Each proxy
# runs one worker with upstream keep-alive (xps: `keepalive 64`; nginx:
# `keepalive 64` + HTTP/1.1; HAProxy: `http-reuse always`). The proxy and the
# backend share CPU 0, wrk (-t1 -c50) runs on CPU 1, REPEAT times alternating;
# medians are reported: req/s, p99, the proxy's peak RSS and CPU time, req per
# proxy CPU-second, new upstream connections, and the proxy's user and kernel
# microseconds per request. Then REPEAT 100 MiB downloads through each
# (throughput, proxy CPU, peak RSS); the stream (TCP) proxies (xps
# `stream`, nginx's stream module, HAProxy tcp mode without and with splice) carrying the same
# 1 KiB requests and 100 MiB download; and the RSS of xps with 1,000 active
# proxied downloads stalled on slow clients. Needs wrk, nginx (and
# libnginx-mod-stream for its stream row), haproxy, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

XPS=${XPS:-target/release/xps}
# XPS_BASE=path: another xps build (an earlier commit) runs beside, as
# `xps-base`, in the 1 KiB comparison: a before/after in one run.
XPS_BASE=${XPS_BASE:-}
DURATION=${DURATION:-10}
REPEAT=${REPEAT:-3}
OUT=$(pwd)/benches/out/proxy
BACKEND=18900; XPS_PORT=18901; NGINX_PORT=18902; HAPROXY_PORT=18903
XPS_TCP=18904; NGINX_TCP=18905; HAPROXY_TCP=18906; HAPROXY_SPLICE=18907
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

for t in wrk nginx haproxy curl python3; do command -v "$t" >/dev/null || { echo "$t is missing" >&2; exit 1; }; done
[ -x "$XPS" ] || { echo "no $XPS: cargo build --release" >&2; exit 1; }

rm -rf "$OUT"; mkdir -p "$OUT/www" "$OUT/backend/logs" "$OUT/backend/tmp" "$OUT/nginx/logs" "$OUT/nginx/tmp"
chmod 755 "$OUT" "$OUT/www"
head -c 1024 /dev/urandom > "$OUT/www/1k.bin"
head -c $((100 << 20)) /dev/urandom > "$OUT/www/100m.bin"

temps() { echo "client_body_temp_path $1/tmp/b; proxy_temp_path $1/tmp/p; fastcgi_temp_path $1/tmp/f; uwsgi_temp_path $1/tmp/u; scgi_temp_path $1/tmp/s;"; }

cat > "$OUT/backend/nginx.conf" <<EOF
worker_processes 1; pid $OUT/backend/nginx.pid; error_log $OUT/backend/logs/error.log;
events { worker_connections 10240; }
http {
    access_log off; sendfile on; tcp_nopush on; open_file_cache max=100;
    keepalive_requests 1000000;
    $(temps "$OUT/backend")
    server { listen 127.0.0.1:$BACKEND; root $OUT/www; location = /status { stub_status; } }
}
EOF
cat > "$OUT/xps.conf" <<EOF
workers 1;
upstream backend { server 127.0.0.1:$BACKEND; keepalive 64; }
server { listen 127.0.0.1:$XPS_PORT; location / { proxy_pass backend; } }
EOF
cat > "$OUT/nginx/nginx.conf" <<EOF
worker_processes 1; pid $OUT/nginx/nginx.pid; error_log $OUT/nginx/logs/error.log;
events { worker_connections 10240; }
http {
    access_log off;
    $(temps "$OUT/nginx")
    upstream backend { server 127.0.0.1:$BACKEND; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
}
EOF
cat > "$OUT/haproxy.cfg" <<EOF
global
    nbthread 1
    pidfile $OUT/haproxy.pid
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend f
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend b
backend b
    server s1 127.0.0.1:$BACKEND
EOF

# The stream (TCP) proxies: xps, nginx's stream module (libnginx-mod-stream),
# HAProxy in tcp mode as configured by default and with splice forced.
mkdir -p "$OUT/nginx-tcp/logs"
cat > "$OUT/xps-tcp.conf" <<EOF
workers 1;
stream { server { listen 127.0.0.1:$XPS_TCP; proxy_pass 127.0.0.1:$BACKEND; } }
EOF
cat > "$OUT/nginx-tcp/nginx.conf" <<EOF
load_module $STREAM_MODULE;
worker_processes 1; pid $OUT/nginx-tcp/nginx.pid; error_log $OUT/nginx-tcp/logs/error.log;
events { worker_connections 10240; }
stream { server { listen 127.0.0.1:$NGINX_TCP; proxy_pass 127.0.0.1:$BACKEND; } }
EOF
for v in tcp splice; do
    port=$HAPROXY_TCP; opts=""
    if [ "$v" = splice ]; then port=$HAPROXY_SPLICE; opts=$'    option splice-request\n    option splice-response'; fi
    cat > "$OUT/haproxy-$v.cfg" <<EOF
global
    nbthread 1
    pidfile $OUT/haproxy-$v.pid
    maxconn 4000
defaults
    mode tcp
$opts
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend f
    bind 127.0.0.1:$port
    default_backend b
backend b
    server s1 127.0.0.1:$BACKEND
EOF
done

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for f in "$OUT/backend/nginx.pid" "$OUT/nginx/nginx.pid" "$OUT/haproxy.pid" \
        "$OUT/nginx-tcp/nginx.pid" "$OUT/haproxy-tcp.pid" "$OUT/haproxy-splice.pid"; do
        [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
    done
}
trap cleanup EXIT

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; return 1; }
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
user_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14}' "/proc/$p/stat"))); done; echo "$t"; }
peak_rss() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status"))); done; echo "$t"; }
accepts() { curl -s "http://127.0.0.1:$BACKEND/status" | awk 'NR == 3 {print $1}'; }

taskset -c 0 nginx -p "$OUT/backend/" -c "$OUT/backend/nginx.conf" -e "$OUT/backend/logs/error.log"
wait_port "$BACKEND"

start() { # NAME → sets PROXY_PIDS and PORT
    case $1 in
        xps) taskset -c 0 "$XPS" "$OUT/xps.conf" 2>"$OUT/xps.log" & local p=$!; PIDS+=("$p"); PORT=$XPS_PORT; wait_port $PORT; PROXY_PIDS=("$p") ;;
        xps-base) taskset -c 0 "$XPS_BASE" "$OUT/xps.conf" 2>"$OUT/xps-base.log" & local p=$!; PIDS+=("$p"); PORT=$XPS_PORT; wait_port $PORT; PROXY_PIDS=("$p") ;;
        nginx) taskset -c 0 nginx -p "$OUT/nginx/" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/logs/error.log"; PORT=$NGINX_PORT; wait_port $PORT
               local m; m=$(cat "$OUT/nginx/nginx.pid"); PROXY_PIDS=("$m" $(pgrep -P "$m")) ;;
        haproxy) taskset -c 0 haproxy -D -f "$OUT/haproxy.cfg"; PORT=$HAPROXY_PORT; wait_port $PORT; PROXY_PIDS=($(cat "$OUT/haproxy.pid")) ;;
        xps-tcp) taskset -c 0 "$XPS" "$OUT/xps-tcp.conf" 2>"$OUT/xps-tcp.log" & local p=$!; PIDS+=("$p"); PORT=$XPS_TCP; wait_port $PORT; PROXY_PIDS=("$p") ;;
        nginx-tcp) taskset -c 0 nginx -p "$OUT/nginx-tcp/" -c "$OUT/nginx-tcp/nginx.conf" -e "$OUT/nginx-tcp/logs/error.log"; PORT=$NGINX_TCP; wait_port $PORT
               local m; m=$(cat "$OUT/nginx-tcp/nginx.pid"); PROXY_PIDS=("$m" $(pgrep -P "$m")) ;;
        haproxy-tcp|haproxy-splice) taskset -c 0 haproxy -D -f "$OUT/$1.cfg"; PORT=$HAPROXY_TCP; [ "$1" = haproxy-splice ] && PORT=$HAPROXY_SPLICE
               wait_port $PORT; PROXY_PIDS=($(cat "$OUT/$1.pid")) ;;
    esac
}
stop() {
    case $1 in
        xps|xps-base) kill "${PROXY_PIDS[0]}"; wait "${PROXY_PIDS[0]}" 2>/dev/null || true ;;
        nginx) kill -QUIT "$(cat "$OUT/nginx/nginx.pid")"; for _ in $(seq 1 100); do [ -f "$OUT/nginx/nginx.pid" ] || break; sleep 0.05; done ;;
        haproxy) kill "$(cat "$OUT/haproxy.pid")"; sleep 0.2 ;;
        xps-tcp) kill "${PROXY_PIDS[0]}"; wait "${PROXY_PIDS[0]}" 2>/dev/null || true ;;
        nginx-tcp) kill -QUIT "$(cat "$OUT/nginx-tcp/nginx.pid")"; for _ in $(seq 1 100); do [ -f "$OUT/nginx-tcp/nginx.pid" ] || break; sleep 0.05; done ;;
        haproxy-tcp|haproxy-splice) kill "$(cat "$OUT/$1.pid")"; sleep 0.2 ;;
    esac
}

HZ=$(getconf CLK_TCK)
ROWS=()
echo "== reverse proxy: xps vs nginx vs HAProxy, 1 KiB responses =="
echo "machine: $(nproc) CPUs; $(nginx -v 2>&1); $(haproxy -v | head -1 | cut -d' ' -f1-3); wrk -t1 -c50 -d${DURATION}s"
printf '%-8s %10s %9s %9s %8s %12s %10s %11s %10s\n' proxy req/s p99 peakRSS cpu req/cpu-s upstream-conns user-us/req sys-us/req
HTTP_PROXIES="xps ${XPS_BASE:+xps-base} nginx haproxy"
for _ in $(seq 1 "$REPEAT"); do
    for name in $HTTP_PROXIES; do
        start "$name"
        taskset -c 1 wrk -t1 -c50 -d2s "http://127.0.0.1:$PORT/1k.bin" >/dev/null
        a0=$(accepts); c0=$(cpu_ticks "${PROXY_PIDS[@]}"); u0=$(user_ticks "${PROXY_PIDS[@]}")
        out=$(timeout $((DURATION + 30)) taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/1k.bin")
        c1=$(cpu_ticks "${PROXY_PIDS[@]}"); u1=$(user_ticks "${PROXY_PIDS[@]}"); a1=$(accepts)
        rss=$(peak_rss "${PROXY_PIDS[@]}")
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
        errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
        cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
        per=$(awk -v r="$reqs" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", r / c; else print 0}')
        conns=$((a1 - a0 - 1))
        usr=$(awk -v t=$((u1 - u0)) -v r="$reqs" -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz * 1e6 / r}')
        sys=$(awk -v t=$((c1 - c0 - u1 + u0)) -v r="$reqs" -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz * 1e6 / r}')
        printf '%-8s %10s %9s %8sK %7ss %12s %10s %11s %10s %s\n' "$name" "$rps" "$p99" "$rss" "$cpu" "$per" "$conns" "$usr" "$sys" "$errs"
        ROWS+=("$name|$rps|$per|$rss|$conns|$usr|$sys")
        stop "$name"
    done
done

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
col() { printf '%s\n' "${ROWS[@]}" | awk -F'|' -v n="$1" -v c="$2" '$1 == n {print $c}' | median; }
echo
echo "medians of $REPEAT runs:"
printf '%-8s %10s %12s %10s %14s %11s %10s\n' proxy req/s req/cpu-s peakRSS upstream-conns user-us/req sys-us/req
for name in $HTTP_PROXIES; do
    printf '%-8s %10.0f %12.0f %9.0fK %14.0f %11.2f %10.2f\n' "$name" "$(col "$name" 2)" "$(col "$name" 3)" "$(col "$name" 4)" "$(col "$name" 5)" "$(col "$name" 6)" "$(col "$name" 7)"
done
best_rps=$(printf '%s\n' "$(col nginx 2)" "$(col haproxy 2)" | sort -g | tail -1)
best_cpu=$(printf '%s\n' "$(col nginx 3)" "$(col haproxy 3)" | sort -g | tail -1)
awk -v x="$(col xps 2)" -v b="$best_rps" -v xc="$(col xps 3)" -v bc="$best_cpu" \
    'BEGIN {printf "xps / the better of nginx and HAProxy: req/s %.2fx, req per CPU-second %.2fx\n", x / b, xc / bc}'
if [ -n "$XPS_BASE" ]; then
    awk -v x="$(col xps 2)" -v b="$(col xps-base 2)" -v xc="$(col xps 3)" -v bc="$(col xps-base 3)" \
        'BEGIN {printf "xps / xps-base: req/s %.2fx, req per CPU-second %.2fx\n", x / b, xc / bc}'
fi

echo
echo "== 100 MiB download through each proxy =="
for name in xps nginx haproxy; do
    start "$name"
    for _ in $(seq 1 "$REPEAT"); do
        c0=$(cpu_ticks "${PROXY_PIDS[@]}")
        speed=$(taskset -c 1 curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$PORT/100m.bin")
        c1=$(cpu_ticks "${PROXY_PIDS[@]}")
        rss=$(peak_rss "${PROXY_PIDS[@]}")
        awk -v n="$name" -v s="$speed" -v r="$rss" -v a="$c0" -v b="$c1" -v hz="$HZ" \
            'BEGIN {printf "%-8s %8.0f MiB/s  proxy CPU %.2f s  peak RSS %d KiB\n", n, s / 1048576, (b - a) / hz, r}'
    done
    stop "$name"
done

echo
echo "== stream (TCP) proxy: HTTP through each tunnel to the same backend =="
TCP_PROXIES="xps-tcp haproxy-tcp haproxy-splice"
if [ -f "$STREAM_MODULE" ]; then
    TCP_PROXIES="xps-tcp nginx-tcp haproxy-tcp haproxy-splice"
else
    echo "(no $STREAM_MODULE: nginx's stream module is left out; apt-get install libnginx-mod-stream)"
fi
TROWS=()
for _ in $(seq 1 "$REPEAT"); do
    for name in $TCP_PROXIES; do
        start "$name"
        taskset -c 1 wrk -t1 -c50 -d2s "http://127.0.0.1:$PORT/1k.bin" >/dev/null
        c0=$(cpu_ticks "${PROXY_PIDS[@]}")
        out=$(timeout $((DURATION + 30)) taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" "http://127.0.0.1:$PORT/1k.bin")
        c1=$(cpu_ticks "${PROXY_PIDS[@]}")
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        reqs=$(echo "$out" | awk '/requests in/ {print $1}')
        per=$(awk -v r="$reqs" -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {c = (b - a) / hz; if (c > 0) printf "%.0f", r / c; else print 0}')
        c0=$(cpu_ticks "${PROXY_PIDS[@]}")
        speed=$(taskset -c 1 curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$PORT/100m.bin")
        c1=$(cpu_ticks "${PROXY_PIDS[@]}")
        mib=$(awk -v s="$speed" 'BEGIN {printf "%.0f", s / 1048576}')
        cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
        printf '%-15s 1 KiB: %10s req/s %9s req/cpu-s   100 MiB: %6s MiB/s, %ss CPU\n' "$name" "$rps" "$per" "$mib" "$cpu"
        TROWS+=("$name|$rps|$per|$mib|$cpu")
        stop "$name"
    done
done
tcol() { printf '%s\n' "${TROWS[@]}" | awk -F'|' -v n="$1" -v c="$2" '$1 == n {print $c}' | median; }
echo "medians of $REPEAT runs:"
printf '%-15s %10s %12s %13s %13s\n' proxy "1KiB req/s" req/cpu-s "100MiB MiB/s" "100MiB CPU-s"
for name in $TCP_PROXIES; do
    printf '%-15s %10.0f %12.0f %13.0f %13.2f\n' "$name" "$(tcol "$name" 2)" "$(tcol "$name" 3)" "$(tcol "$name" 4)" "$(tcol "$name" 5)"
done

echo
echo "== xps RSS with 1,000 active proxied downloads on stalled clients =="
start xps
python3 - "$PORT" "${PROXY_PIDS[0]}" <<'EOF'
import socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss()
conns = []
for _ in range(1000):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /100m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(1024)
    conns.append(s)
time.sleep(2)  # let every relay fill its window
after = rss()
print(f"RSS before {before} KiB, with 1000 stalled downloads {after} KiB: {(after - before) / 1000:.1f} KiB per connection")
for s in conns:
    s.close()
EOF
stop xps
