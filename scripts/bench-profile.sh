#!/usr/bin/env bash
# Where a Check's server CPU goes beyond the health check's: `perf record`
# (the cpu-clock software event, which needs no hardware counters and so
# works in a VM) on the pinned server, first under the health check, then
# under Check, each phase's samples turned into microseconds per call and
# the two subtracted function by function. Unlike instruction counts
# (scripts/bench-instructions.sh) a clock sample lands wherever the CPU
# waits, so cache and TLB misses show under the function that took them.
#
#   bash scripts/bench-profile.sh [crm-large|small]
#
# Needs perf (`apt-get install linux-perf`); it says so and stops without
# it. It builds release (unless WARDEN_BENCH_BUILD=0), fills the store of
# scripts/bench-pinned.sh once, serves it on core 0 and drives it from
# core 1 (64 in flight over 4 connections), records 8 s of each phase
# after 3 s of warm-up, and prints per category (engine, Warden's service
# layer, allocator, memcpy, the rest) and per function the µs per call of
# each phase and their difference. Raw data stays in
# target/bench-profile/. WARDEN_SERVER_BIN=path profiles that build.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v perf >/dev/null; then
  echo "bench-profile: perf is not installed (apt-get install linux-perf); nothing measured" >&2
  exit 1
fi
preset=${1:-crm-large}
work=${WARDEN_BENCH_DIR:-target/bench-$preset}
out=target/bench-profile
source scripts/bench-lib.sh
bench_prepare "$preset" "$work"
bench_pin "server on core 0, warden-load on core 1"
trap stop_server EXIT
bench_header
echo "server: $server_bin"
fill_once "$bin/warden" "$work/warden.db" "$work/$preset.json" "$work/fill.log"
start_warden "$server_bin" "$work/warden.db" "$work/profile.log"
mkdir -p "$out"

for mode in health check; do
  "${load_cpu[@]}" "$bin/warden-load" --addr "$addr" --preset "$preset" --server-pid "$pid" \
    --threads 1 --connections 4 --concurrency 64 --mode "$mode" \
    --duration-secs 14 --warmup-secs 2 --rounds 1 >"$out/load-$mode.txt" 2>&1 &
  load_pid=$!
  # The load generator builds its data set first; record once calls flow.
  until grep -q "server holds" "$out/load-$mode.txt"; do
    kill -0 "$load_pid" 2>/dev/null || { cat "$out/load-$mode.txt" >&2; exit 1; }
    sleep 0.2
  done
  sleep 3
  perf record -q -e cpu-clock -F 4000 -p "$pid" -o "$out/perf-$mode.data" -- sleep 8 2>/dev/null
  wait "$load_pid"
  grep "server CPU" "$out/load-$mode.txt"
  perf report -i "$out/perf-$mode.data" --no-children --sort sym --percent-limit 0.02 \
    --stdio 2>/dev/null | grep -E '^ +[0-9.]+%' >"$out/symbols-$mode.txt"
done

# us_per_call MODE: the phase's server CPU per call, from warden-load.
us_per_call() {
  sed -n 's/.*server CPU \([0-9.]*\) µs per call.*/\1/p' "$out/load-$1.txt" | head -1
}
awk -v hc="$(us_per_call health)" -v cc="$(us_per_call check)" '
  function category(s) {
    if (s ~ /warden::engine|warden::cache|dashmap|chrono/) return "engine (decision, caches)"
    if (s ~ /warden::/) return "Warden service layer (decode, route, answer, telemetry)"
    if (s ~ /mi_/) return "allocator (mimalloc)"
    if (s ~ /mem(move|cpy|cmp|set)/) return "memcpy, memcmp"
    return "transport, HTTP/2, tonic, tokio, kernel"
  }
  {
    share = $1; sub(/%/, "", share)
    $1 = ""; $2 = ""; name = substr($0, 3)
    if (FILENAME ~ /health/) h[name] += share * hc / 100; else c[name] += share * cc / 100
    seen[name] = 1
  }
  END {
    printf "server CPU per call: health %.2f us, Check %.2f us, difference %.2f us\n\n", hc, cc, cc - hc
    for (n in seen) { k = category(n); ch[k] += h[n]; cc2[k] += c[n] }
    printf "| category | health us/call | Check us/call | difference |\n| --- | --- | --- | --- |\n"
    for (k in ch) printf "| %s | %.3f | %.3f | %+.3f |\n", k, ch[k], cc2[k], cc2[k] - ch[k]
    printf "\nfunctions, largest differences first (us per call: health, Check, difference):\n"
    for (n in seen) printf "%+.3f\t%.3f\t%.3f\t%s\n", c[n] - h[n], h[n], c[n], substr(n, 1, 120) | "sort -gr | head -30"
  }
' "$out/symbols-health.txt" "$out/symbols-check.txt"
