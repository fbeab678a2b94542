#!/usr/bin/env bash
# How cost grows (issue 9): the server figures at 0.1×, 1× and 2× of
# crm-large (`warden generate --scale F`: records, manual shares and both
# nesting depths times F), in one table. For each scale of
# WARDEN_BENCH_SCALES ("0.1 1 2" by default), in turn:
#
# 1. generates the data set and fills a fresh SQLite store with it through
#    --bootstrap: the fill time (process start to "warden listening on")
#    and the peak memory of that process (VmHWM at that line);
# 2. starts the server from the store three times: the median start-up
#    time and its VmRSS and VmHWM at the listening line (as scripts/bench.sh;
#    the fill and the start-ups are not pinned, as there);
# 3. pins the last server to core 0 (`taskset -a -p`) and runs warden-load
#    on core 1 with the settings of scripts/bench-pinned.sh: the gRPC
#    health check (the floor), Check (64 in flight over 4 connections),
#    CheckBulk (16 in flight, 100 checks a call) and LookupRecords of the
#    division head's Leads (pages of 10,000), server CPU per call from
#    /proc/PID/stat.
#
#   bash scripts/bench-scale.sh [warden-load flags...]
#
# Environment:
#   WARDEN_BENCH_SCALES="F ..."  the scales, in that order ("0.1 1 2"; the
#                                2× fill takes about a minute and 2.2 GiB)
#   WARDEN_BENCH_ROUNDS=N        rounds of each phase, medians shown (3)
#   WARDEN_BENCH_SECS=S          measured seconds of each phase (8)
#   WARDEN_BENCH_WARMUP=S        unmeasured seconds before each (2)
#   WARDEN_BENCH_DIR=DIR         data sets and stores, one directory per
#                                scale ($CARGO_TARGET_DIR/bench-scale)
#   WARDEN_BENCH_KEEP_STORE=1    reuse a store filled by an earlier run (its
#                                fill is then not measured)
#   WARDEN_BENCH_BUILD=0         use the release binaries already built
set -euo pipefail
cd "$(dirname "$0")/.."

scales=${WARDEN_BENCH_SCALES:-0.1 1 2}
rounds=${WARDEN_BENCH_ROUNDS:-3}
secs=${WARDEN_BENCH_SECS:-8}
warmup=${WARDEN_BENCH_WARMUP:-2}
target=${CARGO_TARGET_DIR:-target}
root=${WARDEN_BENCH_DIR:-$target/bench-scale}
bin=$target/release
if [ "${WARDEN_BENCH_BUILD:-1}" != 0 ]; then
  cargo build --release --bin warden --bin warden-load
fi

source scripts/bench-lib.sh
# The fill and start-ups run unpinned (as in bench.sh); the last server is
# pinned under load.
bench_pin "the fill and start-ups unpinned; under load the server on core 0, warden-load on core 1"
pin_server=
[ ${#load_cpu[@]} -gt 0 ] && pin_server=1
server_cpu=()

trap stop_server EXIT
# cell FILE PHASE COLUMN: a cell of warden-load's closing table (3 calls/s,
# 5 server CPU µs/call, 6 µs/decision, 7 × health CPU per call, 9 p50 ms
# per call, 10 first page ms), "-" if absent.
cell() {
  awk -F'|' -v p="$2" -v c="$3" '
    { name = $2; gsub(/^ +| +$/, "", name) }
    index(name, p) == 1 { v = $c; gsub(/ /, "", v); print v; found = 1; exit }
    END { if (!found) print "-" }' "$1"
}

bench_header
echo "pinning: $pinning"
echo "scales: $scales; $rounds round(s) of ${secs} s per phase after ${warmup} s of warm-up"

rows=()
for scale in $scales; do
  work=$root/x$scale
  mkdir -p "$work"
  echo
  echo "== crm-large × $scale ($work)"
  if [ ! -f "$work/crm-large.json" ]; then
    "$bin/warden" generate --preset crm-large --scale "$scale" --out "$work/crm-large.json"
  fi
  store=$work/warden.db
  fill_ms=- fill_hwm=-
  if [ -z "${WARDEN_BENCH_KEEP_STORE:-}" ] || [ ! -f "$store" ]; then
    rm -f "$store" "$store-shm" "$store-wal"
    if ! start_warden "$bin/warden" "$store" "$work/fill.log" --bootstrap "$work/crm-large.json"; then
      # Not filled: the next run must fill again, not serve an empty store.
      rm -f "$store" "$store-shm" "$store-wal"
      exit 1
    fi
    fill_ms=$ms fill_hwm=$(mib VmHWM)
    echo "filled through --bootstrap: listening after $ms ms; VmRSS $(mib VmRSS) MiB, VmHWM $fill_hwm MiB"
    stop_server
  fi
  times=() rss=() hwm=()
  for run in 1 2 3; do
    stop_server
    start_warden "$bin/warden" "$store" "$work/start.log"
    echo "start-up $run from the store: listening after $ms ms; VmRSS $(mib VmRSS) MiB, VmHWM $(mib VmHWM) MiB"
    times+=("$ms") rss+=("$(mib VmRSS)") hwm+=("$(mib VmHWM)")
  done
  start_ms=$(printf '%s\n' "${times[@]}" | median)
  start_rss=$(printf '%s\n' "${rss[@]}" | median)
  start_hwm=$(printf '%s\n' "${hwm[@]}" | median)
  if [ -n "$pin_server" ]; then
    # Every thread of the running server, and the threads it starts later
    # (they inherit the mask), on core 0.
    taskset -a -p -c 0 "$pid" >/dev/null
  fi
  "${load_cpu[@]}" "$bin/warden-load" --addr "$addr" --preset crm-large --scale "$scale" \
    --server-pid "$pid" --threads 1 --connections 4 --concurrency 64 \
    --bulk-concurrency 16 --bulk-size 100 --duration-secs "$secs" --warmup-secs "$warmup" \
    --lookup-runs 5 --page-size 10000 --rounds "$rounds" "$@" | tee "$work/load.out"
  after_rss=$(mib VmRSS)
  stop_server

  out=$work/load.out
  records=$(sed -n "s/^data set '[^']*': [0-9]* users, \([0-9]*\) records, \([0-9]*\) shares.*/\1 \/ \2/p" "$out")
  ids=$(sed -n 's/^LookupRecords([^)]*): \([0-9]*\) ids;.*/\1/p' "$out" | tail -1)
  lookup_cpu=$(cell "$out" LookupRecords 5)
  # /proc counts CPU in 10 ms ticks: over 5 runs, a lookup of under 2 ms
  # of CPU may read 0.
  lookup_cpu_ms=$(awk -v v="$lookup_cpu" 'BEGIN { if (v == "-") print "-"; else if (v == 0) print "< 2"; else printf "%.1f\n", v / 1000 }')
  rows+=("| ${scale}× | $records | $start_ms | $start_rss / $start_hwm | $fill_ms | $fill_hwm | $(cell "$out" Health 5) | $(cell "$out" "Check x" 5) ($(cell "$out" "Check x" 7)×) | $(cell "$out" "Check x" 3) | $(cell "$out" CheckBulk 6) | ${ids:--} ids: $lookup_cpu_ms of server CPU, $(cell "$out" LookupRecords 9) wall, first page $(cell "$out" LookupRecords 10) | $after_rss |")
done

echo
echo "How cost grows with crm-large's size (start-ups: median of 3; load phases: medians of $rounds round(s) of ${secs} s)"
echo
echo "| scale | records / shares | start-up ms | VmRSS / VmHWM after start-up, MiB | fill by --bootstrap, ms | fill VmHWM, MiB | health, server CPU µs/call | Check, server CPU µs/call (× health) | Check calls/s | CheckBulk(100), server CPU µs/decision | LookupRecords (division head's Leads), ms | VmRSS after the load, MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${rows[@]}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
