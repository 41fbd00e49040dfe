#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), one after the
# other, and prints one line per target: seconds, executions, findings.
# `fuzz/run.sh smoke` runs each for 10 s (a quick check that every target
# builds and runs). Needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). Corpora grow in fuzz/corpus/<target>;
# crashes land in fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${SECONDS_EACH:-600}
if [[ "${1:-}" == "smoke" ]]; then
    SECONDS_EACH=10
    shift
fi
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
    TARGETS=(request_head chunked response_head request_target config_text config_json proxy_header)
fi
python3 seed.py
cargo +nightly fuzz build
mkdir -p ../benches/out/fuzz
for t in "${TARGETS[@]}"; do
    log=../benches/out/fuzz/$t.log
    mkdir -p artifacts/"$t"
    before=$(ls artifacts/"$t" | wc -l)
    cargo +nightly fuzz run "$t" -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1 || true
    after=$(ls artifacts/"$t" | wc -l)
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "$t: ${SECONDS_EACH} s, ${runs} executions, $((after - before)) findings"
done
