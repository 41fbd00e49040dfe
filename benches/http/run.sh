#!/usr/bin/env bash
# Static serving: xps against nginx, same files, same machine, same run.
#
#   cargo build --release && benches/http/run.sh
#
# Each scenario runs wrk (-t1 -c50, DURATION seconds) against each server
# in turn, REPEAT times (alternating), and reports the median run. With one worker, the server is pinned to CPU 0 and wrk to CPU 1.
# For each server it prints req/s, p50/p99 latency, peak RSS, the server's
# CPU time during the run, and requests per server CPU-second, then the
# xps/nginx ratios. Needs wrk and nginx (apt-get install -y wrk nginx).
# The gzip scenarios (SCENARIOS="gzip1 gzip5 gzip-1k") turn gzip on in
# both servers at that level and send `Accept-Encoding: gzip`.
# SCENARIOS="1k-limits 1k" compares the 1 KiB file with limit_req and
# limit_conn configured on the route (never reached) in both servers.
#
# XPS_BASE=path: another xps build (an earlier commit) runs beside, in the
# same run, and gets its own ratios against nginx (before/after a change).
set -euo pipefail
cd "$(dirname "$0")/../.."

XPS=${XPS:-target/release/xps}
XPS_BASE=${XPS_BASE:-}
NGINX=${NGINX:-nginx}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
REPEAT=${REPEAT:-3}
OUT=$(pwd)/benches/out/http
XPS_PORT=${XPS_PORT:-18481}
NGINX_PORT=${NGINX_PORT:-18482}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
command -v "$NGINX" >/dev/null || { echo "nginx is missing: apt-get install -y nginx" >&2; exit 1; }
[ -x "$XPS" ] || { echo "no $XPS: cargo build --release" >&2; exit 1; }

rm -rf "$OUT"
mkdir -p "$OUT/www/dir200" "$OUT/nginx/logs" "$OUT/nginx/tmp"
head -c 1024 /dev/urandom > "$OUT/www/1k.bin"
head -c 102400 /dev/urandom > "$OUT/www/100k.bin"
# 100 KiB of text that compresses like prose.
awk 'BEGIN { srand(7); split("the of and to in is it that was for on are with as his they be at one have this from or had by hot word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them write would like so these her long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down side been now find", w, " "); n = 0; while (n < 102400) { s = w[int(rand() * 100) + 1]; printf "%s%s", s, (rand() < 0.1 ? "\n" : " "); n += length(s) + 1 } }' > "$OUT/www/100k.txt"
for i in $(seq -w 1 200); do printf 'file %s\n' "$i" > "$OUT/www/dir200/file-$i.txt"; done

PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    if [ -f "$OUT/nginx/nginx.pid" ]; then kill "$(cat "$OUT/nginx/nginx.pid")" 2>/dev/null || true; fi
}
trap cleanup EXIT

write_configs() { # $1 = workers, $2 = gzip level (empty: gzip off), $3 = 1: limits configured
    local xgz="" ngz="" xmain="" nmain="" xlim="" nlim=""
    if [ "${3:-}" = 1 ]; then
        # Configured on the route, never reached: what checking them costs.
        xmain="limit_req_zone \$binary_remote_addr zone=r:1m rate=1000000r/s; limit_conn_zone \$binary_remote_addr zone=c:1m;"
        nmain="limit_req_zone \$binary_remote_addr zone=r:1m rate=1000000r/s; limit_conn_zone \$binary_remote_addr zone=c:1m;"
        xlim="limit_req zone=r burst=100000 nodelay; limit_conn c 60000;"
        nlim="limit_req zone=r burst=100000 nodelay; limit_conn c 60000;"
    fi
    if [ -n "${2:-}" ]; then
        xgz="gzip on; gzip_comp_level $2; gzip_types text/plain;"
        ngz="gzip on; gzip_comp_level $2; gzip_types text/plain; gzip_min_length 256;"
    fi
    cat > "$OUT/xps.conf" <<EOF
workers $1;
$xmain
server {
    listen 127.0.0.1:$XPS_PORT;
    root $OUT/www;
    autoindex on;
    $xgz
    $xlim
}
EOF
    cat > "$OUT/nginx/nginx.conf" <<EOF
worker_processes $1;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/logs/error.log;
events { worker_connections 10240; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    default_type application/octet-stream;
    types { text/plain txt; text/html html; }
    client_body_temp_path $OUT/nginx/tmp/body;
    proxy_temp_path $OUT/nginx/tmp/proxy;
    fastcgi_temp_path $OUT/nginx/tmp/fastcgi;
    uwsgi_temp_path $OUT/nginx/tmp/uwsgi;
    scgi_temp_path $OUT/nginx/tmp/scgi;
    $nmain
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $OUT/www;
        autoindex on;
        $ngz
        $nlim
    }
}
EOF
}

# Wait until a port accepts (bounded).
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "port $1 did not open" >&2
    return 1
}

# CPU ticks (user+system) of a list of pids.
cpu_ticks() {
    local t=0
    for p in "$@"; do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}

# Peak RSS (VmHWM, KiB) summed over pids.
peak_rss() {
    local t=0
    for p in "$@"; do
        t=$((t + $(awk '/VmHWM/ {print $2}' "/proc/$p/status")))
    done
    echo "$t"
}

start_xps() { # $1 = pin ("" or "taskset -c 0"), $2 = binary
    $1 "$2" "$OUT/xps.conf" 2>"$OUT/xps.log" &
    XPS_PID=$!
    PIDS+=("$XPS_PID")
    wait_port "$XPS_PORT"
    SERVER_PIDS=("$XPS_PID")
}

start_nginx() {
    $1 "$NGINX" -p "$OUT/nginx/" -c "$OUT/nginx/nginx.conf" -e "$OUT/nginx/logs/error.log"
    wait_port "$NGINX_PORT"
    local master
    master=$(cat "$OUT/nginx/nginx.pid")
    SERVER_PIDS=("$master" $(pgrep -P "$master"))
}

stop_servers() {
    [ -n "${XPS_PID:-}" ] && kill "$XPS_PID" 2>/dev/null && wait "$XPS_PID" 2>/dev/null || true
    XPS_PID=""
    if [ -f "$OUT/nginx/nginx.pid" ]; then
        local m
        m=$(cat "$OUT/nginx/nginx.pid")
        kill -QUIT "$m" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$m" 2>/dev/null || break; sleep 0.05; done
        rm -f "$OUT/nginx/nginx.pid"
    fi
}

HZ=$(getconf CLK_TCK)
RESULTS=()

# run NAME SERVER URL_PATH WRK_PIN
measure() {
    local scenario=$1 server=$2 path=$3 wrk_pin=$4 port
    if [ "$server" = nginx ]; then port=$NGINX_PORT; else port=$XPS_PORT; fi
    local ae=()
    [ -n "${GZ:-}" ] && ae=(-H "Accept-Encoding: gzip")
    # Warm up (fills caches), then measure.
    $wrk_pin wrk -t1 -c"$CONNS" -d2s "${ae[@]}" "http://127.0.0.1:$port$path" >/dev/null
    local before after out
    before=$(cpu_ticks "${SERVER_PIDS[@]}")
    out=$(timeout $((DURATION + 30)) $wrk_pin wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${ae[@]}" "http://127.0.0.1:$port$path")
    after=$(cpu_ticks "${SERVER_PIDS[@]}")
    local rss rps reqs p50 p99 cpu per_cpu non2xx
    rss=$(peak_rss "${SERVER_PIDS[@]}")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    cpu=$(awk -v a="$before" -v b="$after" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
    per_cpu=$(awk -v r="$reqs" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", r / c; else print "inf"}')
    printf '%-18s %-6s %10s %9s %9s %9s %8s %12s %s\n' "$scenario" "$server" "$rps" "$p50" "$p99" "$((rss / 1024))MiB" "${cpu}s" "$per_cpu" "${non2xx:+non-2xx=$non2xx}"
    RESULTS+=("$scenario|$server|$rps|$per_cpu|$rss")
}

scenario() { # NAME PATH WORKERS PINNED(1/0) [GZIP_LEVEL] [LIMITS(1)]
    local name=$1 path=$2 workers=$3 pinned=$4 spin="" wpin=""
    GZ=${5:-}
    if [ "$pinned" = 1 ]; then spin="taskset -c 0"; wpin="taskset -c 1"; fi
    write_configs "$workers" "$GZ" "${6:-}"
    for _ in $(seq 1 "$REPEAT"); do
        start_xps "$spin" "$XPS"
        measure "$name" xps "$path" "$wpin"
        stop_servers
        if [ -n "$XPS_BASE" ]; then
            start_xps "$spin" "$XPS_BASE"
            measure "$name" xps-base "$path" "$wpin"
            stop_servers
        fi
        start_nginx "$spin"
        measure "$name" nginx "$path" "$wpin"
        stop_servers
    done
}

# The median of the numbers on stdin.
median() {
    sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

echo "== static serving: xps vs nginx =="
echo "machine: $(nproc) CPUs, $(uname -r); $("$NGINX" -v 2>&1); wrk -t1 -c$CONNS -d${DURATION}s"
printf '%-18s %-6s %10s %9s %9s %9s %8s %12s\n' scenario server req/s p50 p99 peakRSS cpu req/cpu-s
SCENARIOS=${SCENARIOS:-"1k 100k 404 listing 1k-2w"}
for s in $SCENARIOS; do
    case $s in
        1k) scenario "1k (1w)" /1k.bin 1 1 ;;
        100k) scenario "100k (1w)" /100k.bin 1 1 ;;
        404) scenario "404 (1w)" /missing.bin 1 1 ;;
        listing) scenario "listing200 (1w)" /dir200/ 1 1 ;;
        1k-2w) scenario "1k (2w, unpinned)" /1k.bin 2 0 ;;
        gzip1) scenario "100k text gzip 1" /100k.txt 1 1 1 ;;
        gzip5) scenario "100k text gzip 5" /100k.txt 1 1 5 ;;
        gzip-1k) scenario "1k, gzip on" /1k.bin 1 1 5 ;;
        1k-limits) scenario "1k, limits on" /1k.bin 1 1 "" 1 ;;
    esac
done

echo
echo "medians of $REPEAT runs, and ratios xps/nginx:"
printf '%-18s %12s %12s %12s %12s %8s %10s %8s\n' scenario "xps req/s" "nginx req/s" "xps r/cpu-s" "nginx r/cpu-s" "req/s" "req/cpu-s" "RSS"
printf '%s\n' "${RESULTS[@]}" | cut -d'|' -f1 | awk '!seen[$0]++' | while read -r name; do
    col() { printf '%s\n' "${RESULTS[@]}" | awk -F'|' -v n="$name" -v s="$1" -v c="$2" '$1 == n && $2 == s {print $c}' | median; }
    xr=$(col xps 3); nr=$(col nginx 3); xc=$(col xps 4); nc=$(col nginx 4); xm=$(col xps 5); nm=$(col nginx 5)
    awk -v n="$name" -v xr="$xr" -v nr="$nr" -v xc="$xc" -v nc="$nc" -v xm="$xm" -v nm="$nm" \
        'BEGIN {printf "%-18s %12.0f %12.0f %12.0f %12.0f %7.2fx %9.2fx %7.2fx\n", n, xr, nr, xc, nc, xr / nr, xc / nc, xm / nm}'
done

if [ -n "$XPS_BASE" ]; then
    echo
    echo "before/after: $XPS_BASE (xps-base) and $XPS (xps), each against nginx in this run:"
    printf '%-18s %12s %12s %10s %10s %12s %12s\n' scenario "base req/s" "xps req/s" "base/ngx" "xps/ngx" "base r/cpu/ngx" "xps r/cpu/ngx"
    printf '%s\n' "${RESULTS[@]}" | cut -d'|' -f1 | awk '!seen[$0]++' | while read -r name; do
        col() { printf '%s\n' "${RESULTS[@]}" | awk -F'|' -v n="$name" -v s="$1" -v c="$2" '$1 == n && $2 == s {print $c}' | median; }
        br=$(col xps-base 3); xr=$(col xps 3); nr=$(col nginx 3); bc=$(col xps-base 4); xc=$(col xps 4); nc=$(col nginx 4)
        awk -v n="$name" -v br="$br" -v xr="$xr" -v nr="$nr" -v bc="$bc" -v xc="$xc" -v nc="$nc" \
            'BEGIN {printf "%-18s %12.0f %12.0f %9.2fx %9.2fx %11.2fx %11.2fx\n", n, br, xr, br / nr, xr / nr, bc / nc, xc / nc}'
    done
fi
